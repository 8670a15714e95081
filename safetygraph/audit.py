"""The per-source audit, set-wise in DuckDB: exact-duplicate removal, PII detection and scrubbing.

PII types: email, phone, SSN, credit card (Luhn-checked), IPv4 address, street address and API-key
like secrets. Detection is counted on the original text; with ``scrub=True`` every match is replaced
by a ``[TYPE]`` placeholder in the prompt, the response and every message (tool-call arguments too),
so nothing downstream (shards, splits, the export) carries it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

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


def scrub_sql(text: str) -> str:
    """SQL expression: ``text`` with every PII match replaced by ``[TYPE]`` (untouched without a match)."""
    expr = text
    for name, pat in PII_PATTERNS.items():
        placeholder = f"[{name.upper()}]"
        if name == "credit_card":
            cards = f"list_filter(regexp_extract_all({expr}, '{pat}'), lambda c: {_luhn_ok('c')})"
            expr = f"list_reduce(list_prepend({expr}, {cards}), lambda acc, c: replace(acc, c, '{placeholder}'))"
        else:
            expr = f"regexp_replace({expr}, '{pat}', '{placeholder}', 'g')"
    return f"CASE WHEN regexp_matches({text}, '{ANY_PII}') THEN {expr} ELSE {text} END"


def pii_types_sql(text: str) -> tuple[str, str]:
    """SQL expressions (types found, number of matches) for ``text``."""
    m = _matches(text)
    found = ", ".join(f"CASE WHEN len({expr}) > 0 THEN '{n}' END" for n, expr in m.items())
    return f"list_filter([{found}], lambda x: x IS NOT NULL)", " + ".join(
        f"len({expr})" for expr in m.values()
    )


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
    hits = f"len(regexp_extract_all(lower(coalesce({col}, '')), '{pattern}'))"
    words = f"greatest(1, len(string_split(coalesce({col}, ''), ' ')))"
    return f"round(least(1.0, {hits} * 20.0 / {words}), 4)"


def _norm(col: str) -> str:
    return f"regexp_replace(lower(trim(coalesce({col}, ''))), '\\s+', ' ', 'g')"


def audit(table: pa.Table, scrub: bool = True) -> tuple[pa.Table, dict[str, Any]]:
    """Drop exact duplicates (same normalised prompt and response), count PII by type, score
    toxicity, scrub PII. One query: duplicates go first, so the rest runs on the kept rows only."""
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    types_sql, count_sql = pii_types_sql(CONVERSATION_TEXT)
    scrub_cols = (
        f"""REPLACE (
              {scrub_sql("prompt")} AS prompt,
              CASE WHEN response IS NULL THEN NULL ELSE {scrub_sql("response")} END AS response,
              list_transform(messages, lambda m: struct_pack(
                  role := m.role,
                  content := CASE WHEN m.content IS NULL THEN NULL ELSE {scrub_sql("m.content")} END,
                  tool_calls := CASE WHEN m.tool_calls IS NULL THEN NULL ELSE {scrub_sql("m.tool_calls")} END,
                  tool_call_id := m.tool_call_id, name := m.name)) AS messages)"""
        if scrub
        else ""
    )
    out = duck.query(
        con,
        f"""
        WITH n AS (SELECT *, {_norm("prompt")} AS __np FROM t),
        h AS (
          SELECT * EXCLUDE (__np), sha256(__np || chr(31) || {_norm("response")}) AS content_hash, sha256(__np) AS prompt_hash
          FROM n
        ),
        d AS (SELECT * FROM h QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY __pos) = 1),
        p AS (
          SELECT *, {types_sql} AS pii_types, CAST({count_sql} AS INTEGER) AS pii_count,
                 {toxicity_sql("response")} AS toxicity
          FROM d
        )
        SELECT * EXCLUDE (__pos) {scrub_cols} FROM p ORDER BY __pos
        """,
    )
    con.register("o", out.select(["pii_types", "pii_count"]))
    by_type = dict(
        duck.rows(
            con, "SELECT ty, count(*) FROM (SELECT unnest(pii_types) AS ty FROM o) GROUP BY ty"
        )
    )
    stats = {
        "rows_in": table.num_rows,
        "duplicates_removed": table.num_rows - out.num_rows,
        "rows_out": out.num_rows,
        "rows_with_pii": duck.one(con, "SELECT count(*) FROM o WHERE pii_count > 0")[0],
        "pii_rows_by_type": {n: int(by_type.get(n, 0)) for n in PII_PATTERNS},
        "scrubbed": scrub,
        "toxicity_method": TOXICITY_METHOD,
    }
    return conform(out, AUDITED_SCHEMA), stats


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
