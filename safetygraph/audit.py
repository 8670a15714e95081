"""The per-source audit, set-wise in DuckDB: exact-duplicate removal, PII detection and scrubbing.

PII types: email, phone, SSN, credit card (Luhn-checked), IPv4 address, street address and API-key
like secrets. Detection is counted on the original text; with ``scrub=True`` every match is replaced
by a ``[TYPE]`` placeholder in the prompt, the response and every message (tool-call arguments too),
so nothing downstream (shards, splits, the export) carries it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import duck
from .records import AUDITED_SCHEMA, conform

# RE2 patterns, in the order they are scrubbed (cards first: their Luhn filter reads the raw text).
PII_PATTERNS: dict[str, str] = {
    "credit_card": r"\b\d(?:[ -]?\d){12,18}\b",
    "api_key": r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})",
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "ip_address": r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
    "phone": r"(?:\+?1[ .-]?)?\(?\b[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}\b",
    "street_address": r"\b\d{1,5} (?:[A-Z][a-z]+ ){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace)\b",
}


# The whole conversation for exact-duplicate detection: roles, text and tool calls of every turn (two
# agent runs that end alike but differ in a tool output are different samples).
# (Whitespace around each turn's text does not count: the separators are spaced, and runs collapse.)
# The response view is appended too, for tables whose messages do not carry the answer turn.
DEDUP_TEXT = "array_to_string(list_transform(messages, lambda m: concat_ws(' ', m.role, m.content, m.tool_calls)), ' ' || chr(30) || ' ') || ' ' || chr(31) || ' ' || coalesce(response, '')"

# Every turn of the conversation, tool-call arguments included (prompt and response are views of it).
CONVERSATION_TEXT = "array_to_string(list_transform(messages, lambda m: coalesce(m.content, '') || ' ' || coalesce(m.tool_calls, '')), chr(10))"


def _luhn_ok(candidate: str) -> str:
    """SQL: the Luhn checksum of the digits in ``candidate`` holds (13 to 19 digits)."""
    digits = f"list_reverse(regexp_extract_all({candidate}, '\\d'))"
    doubled = "lambda d, i: CASE WHEN i % 2 = 0 THEN (CAST(d AS INTEGER) * 2) % 9 + CASE WHEN d = '9' THEN 9 ELSE 0 END ELSE CAST(d AS INTEGER) END"
    return f"(len({digits}) BETWEEN 13 AND 19 AND list_sum(list_transform({digits}, {doubled})) % 10 = 0)"


def _matches(text: str) -> dict[str, str]:
    """SQL list expressions of the PII found in ``text``, per type."""
    out = {name: f"regexp_extract_all({text}, '{pat}')" for name, pat in PII_PATTERNS.items()}
    out["credit_card"] = f"list_filter({out['credit_card']}, lambda c: {_luhn_ok('c')})"
    return out


ANY_PII = "|".join(f"(?:{p})" for p in PII_PATTERNS.values())


# No toxicity classifier runs offline here, so the score is a lexicon score, and says so.
TOXICITY_METHOD = "lexicon (share of toxic terms, capped at 1; not a classifier)"
TOXIC_TERMS = [
    "idiot",
    "stupid",
    "moron",
    "dumb",
    "loser",
    "shut up",
    "hate you",
    "kill you",
    "go die",
    "worthless",
    "pathetic",
    "disgusting",
    "scum",
    "trash",
    "fuck",
    "shit",
    "bitch",
    "bastard",
    "asshole",
    "retard",
]


def toxicity_sql(col: str) -> str:
    """SQL: a 0-1 lexicon score of ``col``: toxic term occurrences per 20 words, capped at 1."""
    pattern = "\\b(?:" + "|".join(TOXIC_TERMS) + ")"
    hits = f"len(regexp_extract_all(lower({col}), '{pattern}'))"
    words = f"greatest(1, len(string_split({col}, ' ')))"
    # most texts have no toxic term: one case-insensitive match test, the count only on a hit
    return f"CASE WHEN regexp_matches(coalesce({col}, ''), '(?i){pattern}') THEN round(least(1.0, {hits} * 20.0 / {words}), 4) ELSE 0.0 END"


def _norm(col: str) -> str:
    """Lower-cased, runs of whitespace collapsed to one space, trimmed. The regex runs only on text
    with a double space, tab, newline, CR or FF (cheap substring tests first), the trim only on text
    that starts or ends with a space."""
    low = f"lower(coalesce({col}, ''))"
    needs = " OR ".join(
        f"contains({low}, {w})" for w in ("'  '", "chr(9)", "chr(10)", "chr(12)", "chr(13)")
    )
    c = f"(CASE WHEN {needs} THEN regexp_replace({low}, '\\s+', ' ', 'g') ELSE {low} END)"
    return f"CASE WHEN starts_with({c}, ' ') OR ends_with({c}, ' ') THEN trim({c}) ELSE {c} END"


def _replace_found(col: str) -> str:
    """SQL: ``col`` with each PII string found in the row (``__subs``) replaced by its placeholder.

    The matches come from one regex pass per type over the whole conversation; scrubbing a field is
    then plain string replacement, in the order of ``PII_PATTERNS``."""
    return f"list_reduce(__subs, lambda acc, s: replace(acc, s.needle, s.placeholder), {col})"


def _scrub_columns() -> str:
    """SQL ``REPLACE`` list: prompt, response and every message scrubbed, only in rows with PII.

    Each column comes back NULL in rows without PII (the caller keeps its own value there), so
    text is only rebuilt where something changed."""

    def gated(col: str) -> str:
        return f"CASE WHEN __subs IS NOT NULL THEN {_replace_found(col)} END"

    return f"""REPLACE (
          {gated("prompt")} AS prompt,
          {gated("response")} AS response,
          CASE WHEN __subs IS NULL THEN NULL ELSE list_transform(messages, lambda m: struct_pack(
              role := m.role,
              content := {_replace_found("m.content")},
              tool_calls := {_replace_found("m.tool_calls")},
              tool_call_id := m.tool_call_id, name := m.name)) END AS messages)"""


def _patch_messages(original: pa.ChunkedArray, scrubbed: pa.ChunkedArray) -> pa.Array:
    """``original`` with the rows where ``scrubbed`` is not NULL taken from ``scrubbed``.

    Scrubbing keeps every message list's length, so instead of rebuilding the nested column (a
    coalesce over list<struct> copies everything) only the flat content and tool-call strings are
    patched, in the messages of the rows that had PII."""
    orig = original.combine_chunks()
    new = scrubbed.combine_chunks()
    rows = new.is_valid()
    if not pc.any(rows).as_py():
        return orig
    flat = orig.flatten()
    if orig.null_count or flat.null_count:  # not the shape records.py writes: the general path
        return pc.coalesce(new, orig)
    lengths = pc.list_value_length(orig).to_numpy(zero_copy_only=False)
    in_rows = pa.array(np.repeat(rows.to_numpy(zero_copy_only=False), lengths))
    patch = new.flatten()
    fields = [
        pc.replace_with_mask(flat.field(f.name), in_rows, patch.field(f.name))
        if f.name in ("content", "tool_calls")
        else flat.field(f.name)
        for f in flat.type
    ]
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return pa.ListArray.from_arrays(
        offsets, pa.StructArray.from_arrays(fields, fields=list(flat.type)), type=orig.type
    )


class Auditor:
    """The audit as a stream: ``feed`` one batch of labelled rows at a time, get the audited rows
    back. Exact duplicates (same normalised conversation: every turn) are dropped against everything fed
    so far: the hashes seen live in a DuckDB table, not in Python objects, so memory is bounded by
    the batch size plus 64 bytes a distinct row. ``stats`` sums the batches.

    Two queries a batch: a narrow one hashes and picks the rows to keep (a GROUP BY over two
    columns, not the whole row), a second one finds, counts and scrubs PII and scores toxicity on them."""

    def __init__(self, scrub: bool = True):
        self.scrub = scrub
        self.con = duck.connect()
        self.con.execute("CREATE TABLE seen (content_hash VARCHAR)")
        self.rows_in = 0
        self.rows_out = 0
        self.rows_with_pii = 0
        self.by_type = dict.fromkeys(PII_PATTERNS, 0)
        self._keep_sql = f"""
        SELECT min(__pos) AS __pos, h.content_hash, any_value(prompt_hash) AS prompt_hash FROM (
          SELECT __pos, sha256(nc) AS content_hash, sha256(np) AS prompt_hash
          FROM (SELECT __pos, {_norm("prompt")} AS np, {_norm(DEDUP_TEXT)} AS nc FROM batch)
        ) h
        ANTI JOIN seen USING (content_hash)
        GROUP BY h.content_hash
        ORDER BY __pos
        """
        m = _matches("__conv")
        found = ", ".join(f"CASE WHEN len(__m.{n}) > 0 THEN '{n}' END" for n in m)
        subs = " || ".join(
            f"list_transform(__m.{n}, lambda x: {{'needle': x, 'placeholder': '[{n.upper()}]'}})"
            for n in m
        )
        # plain projections over one scan: DuckDB keeps the input order
        self._audit_sql = f"""
        WITH c AS (SELECT *, {CONVERSATION_TEXT} AS __conv FROM kept),
        m AS (
          SELECT * EXCLUDE (__conv),
                 CASE WHEN regexp_matches(__conv, '{ANY_PII}')
                      THEN struct_pack({", ".join(f"{n} := {e}" for n, e in m.items())}) END AS __m
          FROM c
        )
        SELECT {"* EXCLUDE (__m, __subs) " + _scrub_columns() if scrub else "NULL AS __none"},
               CASE WHEN __m IS NULL THEN [] ELSE list_filter([{found}], lambda x: x IS NOT NULL) END AS pii_types,
               CAST(coalesce({" + ".join(f"len(__m.{n})" for n in m)}, 0) AS INTEGER) AS pii_count,
               {toxicity_sql("response")} AS toxicity
        FROM (SELECT *, CASE WHEN __m IS NOT NULL THEN {subs} END AS __subs FROM m)
        """

    def feed(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        n = batch.num_rows
        duck.register(
            self.con,
            "batch",
            batch.select(["prompt", "response", "messages"]).append_column(
                "__pos", pa.array(range(n), pa.int64())
            ),
        )
        keep = duck.query(self.con, self._keep_sql)
        self.con.unregister("batch")
        positions = keep.column("__pos").to_numpy()
        if len(positions) < n:  # a boolean filter keeps the chunks (and is cheaper than take)
            mask = np.zeros(n, dtype=bool)
            mask[positions] = True
            batch = batch.filter(pa.array(mask))
        duck.register(self.con, "kept", batch.select(["prompt", "response", "messages"]))
        audited = duck.query(self.con, self._audit_sql)  # projections only: row order kept
        self.con.unregister("kept")
        replaced = (
            {
                "prompt": pc.coalesce(audited.column("prompt"), batch.column("prompt")),
                "response": pc.coalesce(audited.column("response"), batch.column("response")),
                "messages": _patch_messages(batch.column("messages"), audited.column("messages")),
            }
            if self.scrub
            else {}
        )
        for name, column in replaced.items():
            batch = batch.set_column(batch.schema.get_field_index(name), name, column)
        for name in ("content_hash", "prompt_hash"):
            batch = batch.append_column(name, keep.column(name))
        for name in ("pii_types", "pii_count", "toxicity"):
            batch = batch.append_column(name, audited.column(name))
        out = conform(batch, AUDITED_SCHEMA)
        self.con.register("new", keep.select(["content_hash"]))
        self.con.execute("INSERT INTO seen SELECT content_hash FROM new")
        self.con.unregister("new")
        types = pc.list_flatten(out.column("pii_types"))
        for item in pc.value_counts(types).to_pylist():
            self.by_type[item["values"]] += int(item["counts"])
        self.rows_with_pii += int(pc.sum(pc.greater(out.column("pii_count"), 0)).as_py() or 0)
        self.rows_in += n
        self.rows_out += out.num_rows
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "duplicates_removed": self.rows_in - self.rows_out,
            "rows_out": self.rows_out,
            "rows_with_pii": self.rows_with_pii,
            "pii_rows_by_type": dict(self.by_type),
            "scrubbed": self.scrub,
            "toxicity_method": TOXICITY_METHOD,
        }


def audit(
    table: pa.Table, scrub: bool = True, batch_rows: int = 100_000
) -> tuple[pa.Table, dict[str, Any]]:
    """Drop exact duplicates (same normalised conversation; the first occurrence stays), count
    PII by type, score toxicity, scrub PII. Runs the ``Auditor`` stream over ``batch_rows`` slices."""
    auditor = Auditor(scrub=scrub)
    parts = [auditor.feed(table.slice(i, batch_rows)) for i in range(0, table.num_rows, batch_rows)]
    out = pa.concat_tables(parts) if parts else AUDITED_SCHEMA.empty_table()
    return out, auditor.stats


def residual_pii(table: pa.Table) -> dict[str, int]:
    """Rows per PII type still present in prompt, response or messages (0 everywhere after scrubbing)."""
    con = duck.connect(t=table.select(["messages"]))
    m = _matches(CONVERSATION_TEXT)
    row = duck.one(
        con,
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE len({expr}) > 0)" for expr in m.values())
        + " FROM t",
    )
    return {n: int(v) for n, v in zip(m, row, strict=True)}
