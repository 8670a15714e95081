"""The judge's read of a model's answers: greedy answers to held-out prompts, labelled by the
build's offline judge, summed as the outcome mix the recipes' figures read."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core.records import prompt_table
from safetygraph.efficacy.lm import chat_prompt, greedy_answers

Judge = Callable[[pa.Table], pa.Table]


def offline_judge() -> Judge:
    """The default offline judge (heuristic signals decided by the trained classifiers)."""
    from safetygraph.labeling.combined import CombinedJudge

    return CombinedJudge().label


def answer_and_judge(
    model,
    tok,
    prompts: Sequence[dict],
    judge: Judge,
    max_new_tokens: int,
    system: str | None = None,
) -> pa.Table:
    """``prompts`` (dicts with ``prompt`` and ``prompt_harmful``) answered greedily by ``model``
    and labelled by ``judge``: prompt, response, prompt_harmful (the files' label), the judge's
    response_refusal and response_harmful."""
    rendered = [chat_prompt(tok, p["prompt"], system) for p in prompts]
    answers = greedy_answers(model, tok, rendered, max_new_tokens)
    table = prompt_table([p["prompt"] for p in prompts], answers)
    # the files' own label of each prompt decides which side it counts on
    tags = [["harmful"] if p["prompt_harmful"] else ["benign"] for p in prompts]
    table = table.set_column(
        table.schema.get_field_index("tags"),
        "tags",
        pa.array(tags, table.schema.field("tags").type),
    )
    labelled = judge(table)
    return pa.table(
        {
            "prompt": table["prompt"],
            "response": table["response"],
            "prompt_harmful": pa.array([bool(p["prompt_harmful"]) for p in prompts]),
            "response_refusal": labelled["response_refusal"],
            "response_harmful": labelled["response_harmful"],
        }
    )


def outcome_mix(judged: pa.Table) -> dict[str, float]:
    """Refusal rate of the harmful prompts, over-refusal rate of the safe ones, harmful-answer
    rate of the harmful prompts (None-free: a side with no prompts is left out)."""
    out: dict[str, float] = {}
    for side, name in ((True, "harmful"), (False, "safe")):
        part = judged.filter(pc.equal(judged["prompt_harmful"], side))
        if not part.num_rows:
            continue
        refused = pc.sum(pc.cast(part["response_refusal"], pa.int64())).as_py() or 0
        harmful = pc.sum(pc.cast(part["response_harmful"], pa.int64())).as_py() or 0
        out[f"{name}_prompts"] = float(part.num_rows)
        out[f"{name}_refusal_rate"] = round(refused / part.num_rows, 4)
        if side:
            out["harmful_answer_rate"] = round(harmful / part.num_rows, 4)
    return out
