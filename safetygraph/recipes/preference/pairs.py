"""Preference pairs: (prompt, chosen, rejected), built three ways and judged on both sides.

- **recorded**: the source carries both answers, as "Human:/Assistant:" transcripts (hh-rlhf): the
  chosen transcript is the row's conversation, the rejected one sits in ``meta`` under the key the
  recipe names (``rejected_key``). Both must share the prompt (every turn before the last).
- **roles**: two generation configs answer the same prompt, by default ``chosen: teacher`` (a
  careful model under a physician's system prompt) and ``rejected: direct`` (a less-safe model
  answering directly): the seed's way.
- **judged**: one config samples several answers per prompt; the judge's labels pick the pair. For
  a harmful prompt a safe refusal is chosen over a compliance (a harmful one first); for a benign
  prompt a helpful answer is chosen over a refusal (the over-refusal case).

Every candidate pair is kept in the table with ``drop_reason`` (null when the pair is good), so the
gates can measure why pairs were lost: ``malformed_prompt`` (the prompt does not end with the
user's turn, e.g. two assistant turns in a row), ``error`` (a request failed; the seed skips and goes on),
``empty``, ``identical``, ``chosen_less_safe`` (the chosen side judged harmful where the rejected
is not), ``prompts_differ`` (recorded pairs), ``no_contrast`` (judged mode found no pair).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.records import MESSAGE_TYPE
from safetygraph.recipes.preference import categories
from safetygraph.sources.errors import RowError
from safetygraph.sources.mapping import parse_transcript

DROP_REASONS = (
    "malformed_prompt",
    "error",
    "empty",
    "identical",
    "chosen_less_safe",
    "prompts_differ",
    "no_contrast",
)
MODES = ("recorded", "roles", "judged")  # how the pair was made

SIDE_FIELDS = [
    ("text", pa.string()),
    ("model", pa.string()),
    ("role", pa.string()),
    ("error", pa.string()),
    ("outcome", pa.string()),
    ("refusal", pa.bool_()),
    ("harmful", pa.bool_()),
]
PAIR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_ref", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("prompt_messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),  # the last user turn (the question)
        pa.field("prompt_hash", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("question_type", pa.string()),
        pa.field("prompt_harmful", pa.bool_()),
        *[pa.field(f"chosen_{n}", t) for n, t in SIDE_FIELDS],
        *[pa.field(f"rejected_{n}", t) for n, t in SIDE_FIELDS],
        pa.field("drop_reason", pa.string()),
    ]
)

# A side: one answer per prompt id, with its judge labels (the labeled-schema columns it needs).
SIDE_COLUMNS = [
    "id",
    "response",
    "generation_model",
    "generation_role",
    "generation_error",
    "label_outcome",
    "response_refusal",
    "response_harmful",
    "prompt_harmful",
]


def _prompt_sql() -> str:
    """SQL over ``p`` (prompt rows): the prompt columns of a pair, from a raw row."""
    return """
      p.id AS prompt_id, p.source, p.source_ref,
      p.messages AS prompt_messages,
      p.prompt,
      sha256(lower(regexp_replace(trim(p.prompt), '\\s+', ' ', 'g'))) AS prompt_hash,
      p.category AS question_type
    """


def _finish(con, body_sql: str, infer_categories: bool = True) -> pa.Table:
    """Pair ids, categories and drop reasons over ``body_sql`` (one row per candidate pair).
    Categories: the normalised question type, inferred from the question where it is missing and
    ``infer_categories`` (a source that declares question types), else ``other``."""
    t = duck.query(
        con,
        f"""
        WITH b AS ({body_sql})
        SELECT sha256(source || chr(31) || prompt_id || chr(31) || coalesce(chosen_text, '') || chr(31)
                      || coalesce(rejected_text, ''))[:24] AS id,
               *,
               CASE
                 WHEN drop_reason IS NOT NULL THEN drop_reason
                 WHEN len(prompt_messages) = 0 OR prompt_messages[len(prompt_messages)].role <> 'user' THEN 'malformed_prompt'
                 WHEN chosen_error IS NOT NULL OR rejected_error IS NOT NULL THEN 'error'
                 WHEN coalesce(trim(chosen_text), '') = '' OR coalesce(trim(rejected_text), '') = '' THEN 'empty'
                 WHEN trim(chosen_text) = trim(rejected_text) THEN 'identical'
                 WHEN chosen_harmful AND NOT rejected_harmful THEN 'chosen_less_safe'
               END AS __reason
        FROM b
        """,
    )
    t = t.drop_columns(["drop_reason"]).rename_columns(
        [
            c if c != "__reason" else "drop_reason"
            for c in t.drop_columns(["drop_reason"]).column_names
        ]
    )
    category = (
        categories.categorise(t.column("question_type"), t.column("prompt"))
        if infer_categories
        else pa.array([categories.OTHER] * t.num_rows, pa.string())
    )
    t = t.append_column("category", category)
    return pa.Table.from_arrays(
        [t.column(f.name).cast(f.type) for f in PAIR_SCHEMA], schema=PAIR_SCHEMA
    )


def _sides_sql(alias: str, side: str) -> str:
    return ", ".join(
        [
            f"{alias}.response AS {side}_text",
            f"{alias}.generation_model AS {side}_model",
            f"{alias}.generation_role AS {side}_role",
            f"{alias}.generation_error AS {side}_error",
            f"{alias}.label_outcome AS {side}_outcome",
            f"{alias}.response_refusal AS {side}_refusal",
            f"{alias}.response_harmful AS {side}_harmful",
        ]
    )


def side(generated: pa.Table, labeled: pa.Table) -> pa.Table:
    """One side of the pairs: every generated row (failed requests included, with their error)
    and, for the answered ones, the judge's labels (``labeled``: the answered rows, labelled)."""
    con = duck.connect(
        g=generated.select(
            ["id", "response", "generation_model", "generation_role", "generation_error"]
        ),
        l=labeled.select(
            ["id", "label_outcome", "response_refusal", "response_harmful", "prompt_harmful"]
        ),
    )
    return duck.query(
        con, "SELECT g.*, l.* EXCLUDE (id) FROM g LEFT JOIN l USING (id) ORDER BY g.id"
    )


def pairs_from_sides(
    prompts: pa.Table,
    chosen: pa.Table,
    rejected: pa.Table,
    mode: str,
    reasons: pa.Table | None = None,
    infer_categories: bool = True,
) -> pa.Table:
    """One candidate pair per prompt row: the chosen side's answer against the rejected side's
    (both from :func:`side`, keyed by the prompt row's id). ``reasons`` (id, reason) marks pairs
    already known to be unusable (e.g. ``prompts_differ``)."""
    if mode not in MODES:
        raise ValueError(f"pair mode {mode!r}: use one of {', '.join(MODES)}")
    reasons = (
        reasons
        if reasons is not None
        else pa.table({"id": pa.array([], pa.string()), "reason": pa.array([], pa.string())})
    )
    con = duck.connect(
        p=prompts.select(["id", "source", "source_ref", "messages", "prompt", "category"]),
        c=chosen.select(SIDE_COLUMNS),
        r=rejected.select(SIDE_COLUMNS),
        d=reasons,
    )
    return _finish(
        con,
        f"""SELECT {_prompt_sql()}, '{mode}' AS mode, coalesce(c.prompt_harmful, r.prompt_harmful) AS prompt_harmful,
                   {_sides_sql("c", "chosen")}, {_sides_sql("r", "rejected")}, d.reason AS drop_reason
            FROM p JOIN c ON c.id = p.id JOIN r ON r.id = p.id LEFT JOIN d ON d.id = p.id ORDER BY p.id""",
        infer_categories,
    )


def pairs_from_samples(
    prompts: pa.Table, samples: Sequence[pa.Table], infer_categories: bool = True
) -> pa.Table:
    """Judged mode: per prompt, the pair the labels of its samples support (see the module doc).
    Samples are tried in order; a prompt with no contrast is kept as ``no_contrast``."""
    parts = [
        t.select(SIDE_COLUMNS).append_column("__k", pa.array([k] * t.num_rows, pa.int32()))
        for k, t in enumerate(samples)
    ]
    con = duck.connect(
        p=prompts.select(["id", "source", "source_ref", "messages", "prompt", "category"]),
        s=pa.concat_tables(parts),
    )
    ok = "s.generation_error IS NULL AND coalesce(trim(s.response), '') <> ''"
    return _finish(
        con,
        f"""
        WITH ranked AS (
          SELECT s.*,
            CASE WHEN NOT ({ok}) THEN NULL
                 WHEN s.prompt_harmful AND s.response_refusal AND NOT s.response_harmful THEN 'good'
                 WHEN s.prompt_harmful AND NOT s.response_refusal THEN 'bad'
                 WHEN NOT s.prompt_harmful AND NOT s.response_refusal THEN 'good'
                 WHEN NOT s.prompt_harmful AND s.response_refusal THEN 'bad'
            END AS kind,
            -- among the bad answers to a harmful prompt, a harmful one is the clearest contrast
            CASE WHEN s.response_harmful THEN 0 ELSE 1 END AS bad_rank
          FROM s
        ), c AS (
          SELECT * FROM ranked WHERE kind = 'good' QUALIFY row_number() OVER (PARTITION BY id ORDER BY __k) = 1
        ), r AS (
          SELECT * FROM ranked WHERE kind = 'bad' QUALIFY row_number() OVER (PARTITION BY id ORDER BY bad_rank, __k) = 1
        ), h AS (SELECT id, bool_or(prompt_harmful) AS prompt_harmful FROM s GROUP BY id)
        SELECT {_prompt_sql()}, 'judged' AS mode, h.prompt_harmful,
               {_sides_sql("c", "chosen")}, {_sides_sql("r", "rejected")},
               CASE WHEN c.id IS NULL OR r.id IS NULL THEN 'no_contrast' END AS drop_reason
        FROM p JOIN h ON h.id = p.id LEFT JOIN c ON c.id = p.id LEFT JOIN r ON r.id = p.id
        ORDER BY p.id
        """,
        infer_categories,
    )


def recorded_sides(
    rows: pa.Table, rejected_key: str = "rejected"
) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """Recorded mode: (prompts, chosen, rejected, reasons) from rows whose conversation ends with
    the chosen answer and whose ``meta[rejected_key]`` holds the rejected transcript. ``chosen`` and
    ``rejected`` are generated-like tables (to be labelled and passed to :func:`side`); a rejected
    transcript that does not share the prompt is marked ``prompts_differ``."""
    prompt_msgs, rejected, reasons = [], [], []
    for rid, msgs, meta in zip(
        rows.column("id").to_pylist(),
        rows.column("messages").to_pylist(),
        rows.column("meta").to_pylist(),
        strict=True,
    ):
        text = (json.loads(meta) if meta else {}).get(rejected_key)
        prompt = msgs[:-1] if msgs and msgs[-1]["role"] == "assistant" else msgs
        answer = None
        if isinstance(text, str):
            try:
                other = parse_transcript(text)
            except RowError:
                other = []
            if other and other[-1]["role"] == "assistant":
                answer = other[-1]["content"]
                if _turns(other[:-1]) != _turns(prompt):
                    reasons.append((rid, "prompts_differ"))
        prompt_msgs.append(prompt)
        rejected.append(answer)
    model = pa.array(["recorded"] * rows.num_rows, pa.string())
    chosen = (
        rows.append_column("generation_model", model)
        .append_column("generation_role", pa.array(["chosen"] * rows.num_rows, pa.string()))
        .append_column("generation_error", pa.nulls(rows.num_rows, pa.string()))
    )
    rejected_rows = chosen.set_column(
        chosen.schema.get_field_index("response"), "response", pa.array(rejected, pa.string())
    ).set_column(
        chosen.schema.get_field_index("generation_role"),
        "generation_role",
        pa.array(["rejected"] * rows.num_rows, pa.string()),
    )
    prompts = rows.set_column(
        rows.schema.get_field_index("messages"),
        "messages",
        pa.array(prompt_msgs, rows.schema.field("messages").type),
    )
    reason_table = pa.table(
        {
            "id": pa.array([r for r, _ in reasons], pa.string()),
            "reason": pa.array([x for _, x in reasons], pa.string()),
        }
    )
    return prompts, chosen, rejected_rows, reason_table


def _turns(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], (m.get("content") or "").strip()) for m in messages]


def kept(pairs: pa.Table) -> pa.Table:
    """The pairs that go on to training (no drop reason)."""
    return pairs.filter(pc.is_null(pairs.column("drop_reason")))


@dataclass(frozen=True)
class PairSummary:
    """Candidate pairs, kept pairs, drops by reason, the judge's label table of the kept pairs'
    two sides, and the benign prompts among them with a refusal chosen (over-refusal)."""

    candidates: int
    kept: int
    dropped: dict[str, int]
    label_table: list[dict[str, Any]]
    benign_prompts: int
    benign_chosen_refusals: int


def summary(pairs: pa.Table) -> PairSummary:
    """The ``PairSummary`` of ``pairs``."""
    con = duck.connect(t=pairs.drop_columns(["prompt_messages"]))
    reasons = dict(
        duck.rows(
            con,
            "SELECT drop_reason, count(*) FROM t WHERE drop_reason IS NOT NULL GROUP BY 1 ORDER BY 1",
        )
    )
    labels = duck.rows(
        con,
        """SELECT chosen_outcome, rejected_outcome, count(*) FROM t WHERE drop_reason IS NULL
           GROUP BY ALL ORDER BY ALL""",
    )
    benign_refusals, benign = duck.one(
        con,
        """SELECT count(*) FILTER (WHERE chosen_refusal), count(*) FROM t
           WHERE drop_reason IS NULL AND NOT coalesce(prompt_harmful, FALSE) AND mode <> 'recorded'""",
    )
    return PairSummary(
        candidates=pairs.num_rows,
        kept=pairs.num_rows - sum(reasons.values()),
        dropped={str(k): int(v) for k, v in reasons.items()},
        label_table=[{"chosen": str(c), "rejected": str(r), "pairs": int(n)} for c, r, n in labels],
        benign_prompts=int(benign),
        benign_chosen_refusals=int(benign_refusals),
    )
