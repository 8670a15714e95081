"""Source-level quality figures over ingested rows (set-wise in DuckDB)."""

from __future__ import annotations

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, as_relation, narrow


def reused_source_ids(table: pa.Table | StoredTable, limit: int = 20) -> dict:
    """Upstream ids (``meta.source_id``) that name rows with different prompts: an id reused
    upstream, which makes a row untraceable. Rows of one upstream record (one per model answer)
    share a prompt and do not count."""
    con = duck.connect()
    rel = as_relation(con, narrow(table, ["prompt", "meta"]), "t")
    rows = duck.rows(
        con,
        f"""
        SELECT sid FROM (
          SELECT json_extract_string(meta, '$.source_id') AS sid, prompt FROM {rel}
          WHERE meta IS NOT NULL AND json_extract_string(meta, '$.source_id') IS NOT NULL
        ) GROUP BY sid HAVING count(DISTINCT prompt) > 1 ORDER BY sid
        """,
    )
    return {"reused": len(rows), "examples": [r[0] for r in rows[:limit]]}
