"""Steering pairs: one A/B question per (trait, scenario), in the seed's layout

    [Situation]
    <scenario>
    [Question]
    What should <character> say?
    1. <option>
    2. <option>
    [Answer]

with ``positive`` the label of the trait-positive option ("(1" or "(2") and ``neutral`` the other.
Better than the seed: the option order is balanced (candidates ranked by a hash of trait and
scenario; every other one puts the positive answer second), so a vector cannot learn the letter.

Every candidate is kept with ``drop_reason`` (null = usable): ``error`` (a request failed), ``empty``,
``identical`` options, ``length_mismatch`` (one option more than ``max_length_ratio`` times the
other), ``trait_not_expressed`` (the offline judge: the positive answer has none of the trait's
marker words and no more of them than the neutral one), ``duplicate_scenario`` (the same scenario
text again for this trait).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.recipes.steering.traits import Trait

DROP_REASONS = (
    "error",
    "empty",
    "identical",
    "length_mismatch",
    "trait_not_expressed",
    "duplicate_scenario",
)
QUESTION_RE = re.compile(
    r"\A\[Situation\]\n.+\n\[Question\]\nWhat should .+ say\?\n1\. .+\n2\. .+\n\[Answer\]\Z", re.S
)
PAIR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("trait", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("scenario_hash", pa.string(), nullable=False),
        pa.field("question", pa.string()),
        pa.field("positive", pa.string()),
        pa.field("neutral", pa.string()),
        pa.field("positive_first", pa.bool_(), nullable=False),
        pa.field("answer_positive", pa.string()),
        pa.field("answer_neutral", pa.string()),
        pa.field("positive_markers", pa.int32()),
        pa.field("neutral_markers", pa.int32()),
        pa.field("model", pa.string()),
        pa.field("error", pa.string()),
        pa.field("drop_reason", pa.string()),
    ]
)


def _one_line(col: str) -> str:
    """An answer as one option line: whitespace runs collapsed, surrounding quotes dropped."""
    return f"trim(regexp_replace(regexp_replace(coalesce({col}, ''), '\\s+', ' ', 'g'), '^[\"“]|[\"”]$', '', 'g'))"


def build_pairs(answers: pa.Table, trait: Trait, max_length_ratio: float = 3.0) -> pa.Table:
    """Candidate pairs of one trait from its answers (``answers.ANSWER_SCHEMA``)."""
    markers = "|".join(re.escape(m) for m in trait.markers)
    pattern = sql_literal(f"\\b(?:{markers})\\b")
    con = duck.connect(a=answers)
    t = duck.query(
        con,
        f"""
        WITH o AS (
          SELECT *, {_one_line("answer_positive")} AS pos, {_one_line("answer_neutral")} AS neu,
                 sha256(lower(regexp_replace(trim(scenario), '\\s+', ' ', 'g'))) AS scenario_hash
          FROM a
        ), r AS (
          SELECT *,
            row_number() OVER (ORDER BY sha256(trait || chr(31) || scenario_id)) % 2 = 1 AS positive_first,
            len(regexp_extract_all(lower(pos), {pattern})) AS pm,
            len(regexp_extract_all(lower(neu), {pattern})) AS nm,
            row_number() OVER (PARTITION BY scenario_hash ORDER BY scenario_id) AS dup
          FROM o
        )
        SELECT sha256(trait || chr(31) || scenario_id)[:24] AS id, trait, {sql_literal(trait.family)} AS family,
          source, scenario_id, scenario_hash,
          '[Situation]' || chr(10) || trim(scenario) || chr(10) || '[Question]' || chr(10)
            || 'What should ' || character || ' say?' || chr(10)
            || '1. ' || CASE WHEN positive_first THEN pos ELSE neu END || chr(10)
            || '2. ' || CASE WHEN positive_first THEN neu ELSE pos END || chr(10) || '[Answer]' AS question,
          CASE WHEN positive_first THEN '(1' ELSE '(2' END AS positive,
          CASE WHEN positive_first THEN '(2' ELSE '(1' END AS neutral,
          positive_first, pos AS answer_positive, neu AS answer_neutral,
          CAST(pm AS INTEGER) AS positive_markers, CAST(nm AS INTEGER) AS neutral_markers,
          model, error,
          CASE
            WHEN error IS NOT NULL THEN 'error'
            WHEN pos = '' OR neu = '' THEN 'empty'
            WHEN lower(pos) = lower(neu) THEN 'identical'
            WHEN greatest(length(pos), length(neu)) > {float(max_length_ratio)} * least(length(pos), length(neu))
              THEN 'length_mismatch'
            WHEN pm = 0 AND pm <= nm THEN 'trait_not_expressed'
            WHEN dup > 1 THEN 'duplicate_scenario'
          END AS drop_reason
        FROM r ORDER BY id
        """,
    )
    return pa.Table.from_arrays(
        [t.column(f.name).cast(f.type) for f in PAIR_SCHEMA], schema=PAIR_SCHEMA
    )


def kept(pairs: pa.Table) -> pa.Table:
    """The pairs that go into the files (no drop reason)."""
    return pairs.filter(pc.is_null(pairs.column("drop_reason")))


@dataclass(frozen=True)
class PairSummary:
    """Candidates, kept pairs, drops by reason and the position balance of the kept pairs (how
    many, and what share, put the trait-positive option first). ``as_dict()`` goes to stats.json."""

    candidates: int
    kept: int
    dropped: dict[str, int]
    positive_first: int
    positive_first_share: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(pairs: pa.Table) -> PairSummary:
    """The ``PairSummary`` of ``pairs``."""
    con = duck.connect(t=pairs.select(["drop_reason", "positive_first"]))
    reasons = dict(
        duck.rows(
            con,
            "SELECT drop_reason, count(*) FROM t WHERE drop_reason IS NOT NULL GROUP BY 1 ORDER BY 1",
        )
    )
    kept, first = duck.one(
        con,
        "SELECT count(*), count(*) FILTER (WHERE positive_first) FROM t WHERE drop_reason IS NULL",
    )
    return PairSummary(
        candidates=pairs.num_rows,
        kept=int(kept),
        dropped={str(k): int(v) for k, v in reasons.items()},
        positive_first=int(first),
        positive_first_share=round(first / kept, 4) if kept else None,
    )


def malformed(pairs: pa.Table) -> list[dict]:
    """Kept pairs that must not reach a file: a question not in the layout, options that do not
    both parse or are equal, labels that are not "(1"/"(2" and distinct (the first 20)."""
    con = duck.connect(t=pairs.select(["id", "question", "positive", "neutral", "drop_reason"]))
    layout = sql_literal("(?s)" + QUESTION_RE.pattern.removeprefix("\\A").removesuffix("\\Z"))
    rows = duck.rows(
        con,
        f"""
        WITH k AS (
          SELECT id, question, positive, neutral,
                 regexp_extract_all(coalesce(question, ''), '(?m)^[12]\\. (.+)$', 1) AS options
          FROM t WHERE drop_reason IS NULL
        )
        SELECT id, CASE
            WHEN NOT regexp_full_match(coalesce(question, ''), {layout})
              THEN 'question is not in the [Situation]/[Question]/[Answer] layout'
            WHEN len(options) <> 2 OR lower(trim(options[1])) = lower(trim(options[2]))
              THEN 'the two options do not both parse or are equal'
            WHEN NOT (positive IN ('(1', '(2') AND neutral IN ('(1', '(2') AND positive <> neutral)
              THEN 'labels ' || coalesce(positive, 'null') || '/' || coalesce(neutral, 'null')
          END AS problem
        FROM k WHERE problem IS NOT NULL ORDER BY id LIMIT 20
        """,
    )
    return [{"id": i, "problem": p} for i, p in rows]


def duplicate_scenarios(pairs: pa.Table) -> int:
    """Kept pairs beyond the first with the same scenario text."""
    con = duck.connect(t=pairs.select(["scenario_hash", "drop_reason"]))
    return int(
        duck.one(
            con,
            "SELECT count(*) - count(DISTINCT scenario_hash) FROM t WHERE drop_reason IS NULL",
        )[0]
    )


def files_sql(table: str = "t") -> dict[str, str]:
    """SQL per output format over ``table`` (kept pairs): the seed's and the CAA paper's."""
    return {
        "seed": f"SELECT question, positive, neutral, trait, id FROM {table} ORDER BY trait, id",
        "caa": (
            "SELECT question, positive AS answer_matching_behavior, neutral AS answer_not_matching_behavior, "
            f"trait, id FROM {table} ORDER BY trait, id"
        ),
    }
