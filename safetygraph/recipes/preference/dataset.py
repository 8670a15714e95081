"""The preference dataset: the kept pairs of the profile's preference sources merged, split into
train and eval by prompt cluster, and rendered in TRL's formats.

TRL's preference formats (what ``DPOTrainer`` reads):
- ``standard``: ``prompt``, ``chosen``, ``rejected`` as strings; the prompt is the training system
  prompt, a blank line and the question (a multi-turn prompt as a "Human:/Assistant:" transcript
  ending with "Assistant:").
- ``conversational``: ``prompt`` a list of messages (the training system prompt first, then the
  conversation), ``chosen`` and ``rejected`` each one assistant message in a list.

The seed's fields ride along: ``id, source, category, question_type, question`` and
``meta{teacher_model, rejected_model}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.audit.neardup import PairCache
from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.recipes.preference.pairs import PAIR_SCHEMA, kept
from safetygraph.recipes.splits import assign_splits
from safetygraph.sources.recipe_settings import PREFERENCE_FORMATS
from safetygraph.sources.thresholds import Thresholds

FORMATS = PREFERENCE_FORMATS


@dataclass(frozen=True)
class PairMergeStats:
    """Usable pairs read from the sources, and the copies of a pair an earlier source gave."""

    pairs_in: int = 0
    cross_source_duplicates_removed: int = 0


def merge_pairs(
    tables: Mapping[str, pa.Table], order: Sequence[str]
) -> tuple[pa.Table, PairMergeStats]:
    """The kept pairs of each source, in profile order; a pair (same prompt, chosen and rejected)
    that an earlier source already gave is dropped."""
    parts = [kept(tables[n]) for n in order if n in tables]
    union = pa.concat_tables(parts) if parts else PAIR_SCHEMA.empty_table()
    union = union.append_column("__pos", pa.array(range(union.num_rows), pa.int64()))
    con = duck.connect(u=union)
    merged = duck.query(
        con,
        """SELECT * EXCLUDE (__pos) FROM u
           QUALIFY row_number() OVER (PARTITION BY prompt_hash, chosen_text, rejected_text ORDER BY __pos) = 1
           ORDER BY __pos""",
    )
    return merged.cast(PAIR_SCHEMA), PairMergeStats(
        pairs_in=union.num_rows,
        cross_source_duplicates_removed=union.num_rows - merged.num_rows,
    )


def split_pairs(
    pairs: pa.Table,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = Thresholds.near_dup_threshold,
    eval_only: tuple[str, ...] = (),
    held: pa.Array | None = None,
    cache: PairCache | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Train and eval, stratified by source and drawn per prompt cluster: every pair of a prompt
    (and of its near duplicates) is on one side; the pairs of ``eval_only`` sources (evaluation
    sets the profile builds from) on the eval side."""
    keys = pairs.select(["prompt_hash", "prompt", "source"]).rename_columns(
        ["prompt_hash", "prompt", "stratum"]
    )
    forced = pa.chunked_array(
        [
            pairs.filter(pc.is_in(pairs.column("source"), pa.array(eval_only, pa.string())))
            .column("prompt_hash")
            .combine_chunks(),
            pa.array(held if held is not None else [], pa.string()),
        ],
        pa.string(),
    )
    assigned = assign_splits(keys, eval_fraction, seed, near_dup_threshold, forced, cache)
    con = duck.connect(p=pairs, a=assigned)
    con.execute("CREATE TABLE s AS SELECT p.*, a.split FROM p JOIN a USING (prompt_hash)")

    def side(name: str) -> pa.Table:
        t = duck.query(
            con, f"SELECT * EXCLUDE (split) FROM s WHERE split = '{name}' ORDER BY source, id"
        )
        return t.cast(PAIR_SCHEMA)

    return side("train"), side("eval")


def benign_chosen_refusals(pairs: pa.Table) -> tuple[int, int]:
    """(chosen answers that refuse, pairs) among the generated pairs whose prompt is not harmful.

    Recorded pairs are left out: their chosen side is the dataset's own (human) preference, not a
    model this build chose, and the gate guards against a teacher that refuses ordinary questions."""
    con = duck.connect(t=pairs.select(["prompt_harmful", "chosen_refusal", "mode"]))
    refusals, n = duck.one(
        con,
        "SELECT count(*) FILTER (WHERE chosen_refusal), count(*) FROM t "
        "WHERE NOT coalesce(prompt_harmful, FALSE) AND mode <> 'recorded'",
    )
    return int(refusals), int(n)


def malformed_pairs(pairs: pa.Table) -> list[dict[str, Any]]:
    """Pairs that must never reach a training file: a side empty or failed, both sides equal, or
    the chosen side judged harmful where the rejected is not (the first 20)."""
    con = duck.connect(t=pairs.drop_columns(["prompt_messages"]))
    rows = duck.rows(
        con,
        """SELECT id, CASE
             WHEN chosen_error IS NOT NULL OR rejected_error IS NOT NULL THEN 'generation error'
             WHEN coalesce(trim(chosen_text), '') = '' OR coalesce(trim(rejected_text), '') = '' THEN 'empty side'
             WHEN trim(chosen_text) = trim(rejected_text) THEN 'chosen equals rejected'
             WHEN chosen_harmful AND NOT rejected_harmful THEN 'chosen judged harmful, rejected not'
           END AS problem
           FROM t WHERE problem IS NOT NULL ORDER BY id LIMIT 20""",
    )
    return [{"id": i, "problem": p} for i, p in rows]


def duplicate_pairs(pairs: pa.Table) -> int:
    """Pairs beyond the first with the same prompt, chosen and rejected."""
    con = duck.connect(t=pairs.select(["prompt_hash", "chosen_text", "rejected_text"]))
    return int(
        duck.one(
            con,
            "SELECT count(*) - count(DISTINCT (prompt_hash, chosen_text, rejected_text)) FROM t",
        )[0]
    )


def trl_sql(fmt: str, system_prompt: str | None, table: str = "t") -> str:
    """SQL over ``table`` (pairs): one TRL row per pair in ``fmt``, the seed's fields alongside."""
    if fmt not in FORMATS:
        raise ValueError(f"preference format {fmt!r}: use one of {', '.join(FORMATS)}")
    system = sql_literal(system_prompt) if system_prompt else "NULL"
    turns = "list_filter(prompt_messages, lambda m: m.role IN ('user', 'assistant'))"
    if fmt == "standard":
        transcript = (
            f"array_to_string(list_transform({turns}, lambda m: CASE WHEN m.role = 'user' THEN 'Human: ' "
            "ELSE 'Assistant: ' END || m.content), chr(10) || chr(10)) || chr(10) || chr(10) || 'Assistant:'"
        )
        body = f"CASE WHEN len({turns}) = 1 THEN prompt ELSE {transcript} END"
        prompt = f"CASE WHEN {system} IS NULL THEN {body} ELSE {system} || chr(10) || chr(10) || {body} END"
        chosen, rejected = "chosen_text", "rejected_text"
    else:
        msgs = f"list_transform({turns}, lambda m: {{'role': m.role, 'content': m.content}})"
        prompt = (
            f"CASE WHEN {system} IS NULL THEN {msgs} "
            f"ELSE list_concat([{{'role': 'system', 'content': {system}}}], {msgs}) END"
        )
        chosen = "[{'role': 'assistant', 'content': chosen_text}]"
        rejected = "[{'role': 'assistant', 'content': rejected_text}]"
    return f"""
    SELECT {prompt} AS prompt, {chosen} AS chosen, {rejected} AS rejected,
           id, source, category, question_type, prompt AS question,
           {{'teacher_model': chosen_model, 'rejected_model': rejected_model}} AS meta,
           {{'chosen_outcome': chosen_outcome, 'rejected_outcome': rejected_outcome,
             'prompt_harmful': prompt_harmful}} AS labels
    FROM {table} ORDER BY source, id
    """
