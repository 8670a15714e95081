"""PII: detection (email, phone, SSN, Luhn-checked credit card, IPv4, street address, API-key like
secrets) and scrubbing to ``[TYPE]`` placeholders, as DuckDB SQL over every turn of a conversation.

Detection is counted on the original text; scrubbing replaces each match in the prompt, the response
and every message (tool-call arguments too), so nothing downstream carries it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, connect, narrow

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


# Every turn of the conversation, tool-call arguments included (prompt and response are views of it).
CONVERSATION_TEXT = "array_to_string(list_transform(messages, lambda m: coalesce(m.content, '') || ' ' || coalesce(m.tool_calls, '')), chr(10))"


def _luhn_ok(candidate: str) -> str:
    """SQL: the Luhn checksum of the digits in ``candidate`` holds (13 to 19 digits)."""
    digits = f"list_reverse(regexp_extract_all({candidate}, '\\d'))"
    doubled = "lambda d, i: CASE WHEN i % 2 = 0 THEN (CAST(d AS INTEGER) * 2) % 9 + CASE WHEN d = '9' THEN 9 ELSE 0 END ELSE CAST(d AS INTEGER) END"
    return f"(len({digits}) BETWEEN 13 AND 19 AND list_sum(list_transform({digits}, {doubled})) % 10 = 0)"


def pii_matches(text: str) -> dict[str, str]:
    """SQL list expressions of the PII found in ``text``, per type."""
    out = {name: f"regexp_extract_all({text}, '{pat}')" for name, pat in PII_PATTERNS.items()}
    out["credit_card"] = f"list_filter({out['credit_card']}, lambda c: {_luhn_ok('c')})"
    return out


ANY_PII = "|".join(f"(?:{p})" for p in PII_PATTERNS.values())


def _replace_found(col: str) -> str:
    """SQL: ``col`` with each PII string found in the row (``__subs``) replaced by its placeholder.

    The matches come from one regex pass per type over the whole conversation; scrubbing a field is
    then plain string replacement, in the order of ``PII_PATTERNS``."""
    return f"list_reduce(__subs, lambda acc, s: replace(acc, s.needle, s.placeholder), {col})"


def scrub_columns() -> str:
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


def patch_messages(original: pa.ChunkedArray, scrubbed: pa.ChunkedArray) -> pa.Array:
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


def residual_pii(table: pa.Table | StoredTable) -> dict[str, int]:
    """Rows per PII type still present in prompt, response or messages (0 everywhere after
    scrubbing); a stored table is scanned by DuckDB in place."""
    con = connect(t=narrow(table, ["messages"]))
    m = pii_matches(CONVERSATION_TEXT)
    row = duck.one(
        con,
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE len({expr}) > 0)" for expr in m.values())
        + " FROM t",
    )
    return {n: int(v) for n, v in zip(m, row, strict=True)}
