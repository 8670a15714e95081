"""The per-source audit: exact-duplicate removal and PII detection, set-wise in DuckDB."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from . import duck
from .records import AUDITED_SCHEMA, conform

# RE2 patterns; matched against prompt and response.
PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"(?:\+?1[ .-]?)?\(?\b[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "credit_card": r"\b(?:\d[ -]?){13,16}\b",
}


def _luhn_ok(candidate: str) -> str:
    """SQL: the Luhn checksum of the digits in ``candidate`` holds (13 to 19 digits)."""
    digits = f"list_reverse(regexp_extract_all({candidate}, '\\d'))"
    doubled = "lambda d, i: CASE WHEN i % 2 = 0 THEN (CAST(d AS INTEGER) * 2) % 9 + CASE WHEN d = '9' THEN 9 ELSE 0 END ELSE CAST(d AS INTEGER) END"
    return f"(len({digits}) BETWEEN 13 AND 19 AND list_sum(list_transform({digits}, {doubled})) % 10 = 0)"


def _norm(col: str) -> str:
    return f"regexp_replace(lower(trim(coalesce({col}, ''))), '\\s+', ' ', 'g')"


def audit(table: pa.Table) -> tuple[pa.Table, dict[str, Any]]:
    """Drop exact duplicates (same normalised prompt and response) and count PII by type."""
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    text = "coalesce(prompt, '') || chr(10) || coalesce(response, '')"
    matches = {name: f"regexp_extract_all({text}, '{pat}')" for name, pat in PII_PATTERNS.items()}
    matches["credit_card"] = f"list_filter({matches['credit_card']}, lambda c: {_luhn_ok('c')})"
    found = ", ".join(f"CASE WHEN len(__{n}) > 0 THEN '{n}' END" for n in matches)
    con.execute(
        f"""
        CREATE TABLE hashed AS
        WITH m AS (
          SELECT *, {", ".join(f"{expr} AS __{n}" for n, expr in matches.items())} FROM t
        )
        SELECT * EXCLUDE ({", ".join(f"__{n}" for n in matches)}),
               sha256({_norm("prompt")} || chr(31) || {_norm("response")}) AS content_hash,
               sha256({_norm("prompt")}) AS prompt_hash,
               list_filter([{found}], lambda x: x IS NOT NULL) AS pii_types,
               CAST({" + ".join(f"len(__{n})" for n in matches)} AS INTEGER) AS pii_count
        FROM m
        """
    )
    total = duck.one(con, "SELECT count(*) FROM hashed")[0]
    out = duck.query(
        con,
        "SELECT * EXCLUDE (__pos) FROM hashed "
        "QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY __pos) = 1 ORDER BY __pos",
    )
    by_type = dict(
        duck.rows(
            con,
            "SELECT ty, count(*) FROM (SELECT DISTINCT content_hash, unnest(pii_types) AS ty FROM hashed) GROUP BY ty",
        )
    )
    stats = {
        "rows_in": total,
        "duplicates_removed": total - out.num_rows,
        "rows_out": out.num_rows,
        "rows_with_pii": sum(1 for n in out.column("pii_count").to_pylist() if n),
        "pii_rows_by_type": {n: int(by_type.get(n, 0)) for n in PII_PATTERNS},
    }
    return conform(out, AUDITED_SCHEMA), stats
