"""The judges by name, like the generation backends: ``make_judge`` builds the one a run chooses,
``BatchJudge`` applies it batch by batch and sums its figures, ``LabelRun`` streams a source through
it and keeps the step's figures typed (``LabelStats``).

- combined (offline default), classifier: the heuristic's signals decided by the trained
  classifiers (``combined.py``); heuristic: the constitution's rules alone;
- llm: an LLM judge through a generation config; two_pass: a second LLM judge re-labels the rows
  under a confidence floor or where the first disagrees with the heuristic;
- wildguard, llamaguard: a guard model's own format (``guard.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core.tables import StoredTable, table_batches
from safetygraph.generation import Backend, GenerationConfig, RequestCache
from safetygraph.labeling.combined import CombinedJudge
from safetygraph.labeling.constitution import Constitution
from safetygraph.labeling.guard import GuardJudge
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.labeling.llm_judge import LLMJudge, label_two_pass

OFFLINE_JUDGES = ("combined", "heuristic", "classifier")
MODEL_JUDGES = ("llm", "two_pass", "wildguard", "llamaguard")
JUDGES = OFFLINE_JUDGES + MODEL_JUDGES


@dataclass(frozen=True)
class JudgeChoice:
    """What a run asks for: the judge, the generation configs its model judges use (by role) and
    the two-pass confidence floor."""

    judge: str = "combined"
    judge_role: str = "judge"
    second_judge_role: str = "judge_second"
    second_pass_below: float = 0.7


class BatchJudge:
    """The chosen judge, built once: ``label`` adds the label columns to rows with a response;
    ``stats`` sums the judge's figures over the batches. ``config_for(role)`` gives a generation
    config, ``backend_for(config)`` its backend, ``cache`` the request cache (model judges only)."""

    def __init__(
        self,
        choice: JudgeChoice,
        constitution: Constitution,
        config_for: Callable[[str], GenerationConfig] | None = None,
        backend_for: Callable[[GenerationConfig], Backend] | None = None,
        cache: Callable[[], RequestCache] | None = None,
    ):
        if choice.judge not in JUDGES:
            raise ValueError(
                f"judge {choice.judge!r} is not known; use combined, heuristic, classifier, llm, "
                "two_pass, wildguard or llamaguard"
            )
        self.stats: dict[str, int] = {}
        self._second = None
        if choice.judge == "heuristic":
            self._judge = HeuristicJudge(constitution)
        elif choice.judge in ("combined", "classifier"):
            self._judge = CombinedJudge(constitution, mode=choice.judge)
        else:
            if config_for is None or backend_for is None:
                raise ValueError(f"judge {choice.judge!r} needs generation configs and a backend")
            store = cache() if cache else None
            if choice.judge in ("wildguard", "llamaguard"):
                gen = config_for(choice.judge_role)
                self._judge = GuardJudge(choice.judge, gen, backend_for, constitution, cache=store)
            else:
                self._judge = LLMJudge(
                    config_for(choice.judge_role), constitution, backend_for, cache=store
                )
                if choice.judge == "two_pass":
                    self._second = LLMJudge(
                        config_for(choice.second_judge_role), constitution, backend_for, cache=store
                    )
                    self._below = choice.second_pass_below
        self.name = (
            f"{self._judge.name} then {self._second.name}" if self._second else self._judge.name
        )

    def label(self, table: pa.Table) -> pa.Table:
        if self._second is not None:
            out, figures = label_two_pass(table, self._judge, self._second, self._below)
        else:
            out = self._judge.label(table)
            figures = getattr(self._judge, "stats", {})  # the offline judges keep none
        for key, value in figures.items():
            self.stats[key] = self.stats.get(key, 0) + value
        return out


@dataclass
class LabelStats:
    """A labelling step's figures, summed as the batches stream."""

    rows: int = 0
    without_response: int = 0
    confidence_sum: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def mean_confidence(self) -> float:
        return round(self.confidence_sum / self.rows, 4) if self.rows else 0.0

    def add(self, batch_rows: int, labelled: pa.Table) -> None:
        self.without_response += batch_rows - labelled.num_rows
        self.rows += labelled.num_rows
        self.confidence_sum += pc.sum(labelled.column("label_confidence")).as_py() or 0.0
        if labelled.num_rows:
            for d in pc.value_counts(labelled.column("label_outcome")).to_pylist():
                key = str(d["values"])
                self.outcomes[key] = self.outcomes.get(key, 0) + int(d["counts"])


@dataclass
class LabelRun:
    """``batches(table)``: the rows with a response, labelled by ``judge`` batch by batch (rows
    without one are counted, not labelled)."""

    judge: BatchJudge
    batch_rows: int = 50_000
    stats: LabelStats = field(default_factory=LabelStats)

    def batches(self, table: pa.Table | StoredTable) -> Iterator[pa.Table]:
        for batch in table_batches(table, self.batch_rows):
            answered = batch.filter(pc.is_valid(batch.column("response")))
            out = self.judge.label(answered)
            self.stats.add(batch.num_rows, out)
            yield out
