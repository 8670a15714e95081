"""Exact duplicates: the normalised text a row is hashed by, and duplicate-id detection."""

from __future__ import annotations

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, as_relation, narrow

# The whole conversation for exact-duplicate detection: roles, text and tool calls of every turn (two
# agent runs that end alike but differ in a tool output are different samples).
# (Whitespace around each turn's text does not count: the separators are spaced, and runs collapse.)
# The response view is appended too, for tables whose messages do not carry the answer turn.
DEDUP_TEXT = "array_to_string(list_transform(messages, lambda m: concat_ws(' ', m.role, m.content, m.tool_calls)), ' ' || chr(30) || ' ') || ' ' || chr(31) || ' ' || coalesce(response, '')"


def normalised(col: str) -> str:
    """Lower-cased, runs of whitespace collapsed to one space, trimmed. The regex runs only on text
    with a double space, tab, newline, CR or FF (cheap substring tests first), the trim only on text
    that starts or ends with a space."""
    low = f"lower(coalesce({col}, ''))"
    needs = " OR ".join(
        f"contains({low}, {w})" for w in ("'  '", "chr(9)", "chr(10)", "chr(12)", "chr(13)")
    )
    c = f"(CASE WHEN {needs} THEN regexp_replace({low}, '\\s+', ' ', 'g') ELSE {low} END)"
    return f"CASE WHEN starts_with({c}, ' ') OR ends_with({c}, ' ') THEN trim({c}) ELSE {c} END"


def duplicate_ids(table: pa.Table | StoredTable) -> list[str]:
    """Ids used by more than one row (the first 50); a stored table is scanned by DuckDB in place."""
    con = duck.connect()
    rel = as_relation(con, narrow(table, ["id"]), "t")
    return [
        r[0]
        for r in duck.rows(
            con, f"SELECT id FROM {rel} GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 50"
        )
    ]
