"""The evaluation sets' prompts, read: each declared set's source through the ingest (distinct
prompts), each declared file through DuckDB. The declarations themselves are parsed with the
registry (``eval_sets.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from safetygraph.audit.decont import EVAL_PROMPTS_SCHEMA
from safetygraph.core import duck
from safetygraph.core.paths import resolve_data_path
from safetygraph.sources.eval_sets import FILE_FORMATS, Decontamination, EvalSetError
from safetygraph.sources.ingest import Ingest


def _file_table(name: str, path: str) -> pa.Table:
    resolved = resolve_data_path(path)
    fmt = FILE_FORMATS.get(resolved.suffix.lower())
    if not resolved.exists():
        raise EvalSetError(
            f"evaluation set '{name}': file {resolved} does not exist; fix decontamination.eval_files"
        )
    if fmt is None:
        raise EvalSetError(
            f"evaluation set '{name}': {resolved} is not one of {', '.join(FILE_FORMATS)}"
        )
    con = duck.connect()
    reader = {
        "jsonl": "read_json_auto({p}, format='newline_delimited')",
        "json": "read_json_auto({p})",
        "csv": "read_csv_auto({p}, header=true)",
        "parquet": "read_parquet({p})",
    }[fmt].format(p=duck.sql_literal(str(resolved)))
    columns = [r[0] for r in duck.rows(con, f"DESCRIBE SELECT * FROM {reader}")]
    if "prompt" not in columns:
        raise EvalSetError(
            f"evaluation set '{name}': {resolved} has no 'prompt' column (columns: {columns})"
        )
    ident = "CAST(id AS VARCHAR)" if "id" in columns else "CAST(row_number() OVER () AS VARCHAR)"
    return duck.query(
        con,
        f"SELECT {duck.sql_literal(name)} AS eval_set, {ident} AS eval_id, CAST(prompt AS VARCHAR) AS prompt "
        f"FROM {reader} WHERE prompt IS NOT NULL AND trim(CAST(prompt AS VARCHAR)) <> ''",
    )


def eval_prompt_tables(decont: Decontamination, spec_for) -> Iterator[pa.Table]:
    """One table (EVAL_PROMPTS_SCHEMA) per declared evaluation set, distinct prompts only (a
    source with several answers per prompt gives each prompt once). ``spec_for(name)`` is the
    registry entry of a source with the profile's overrides."""
    for name in decont.eval_sets:
        parts = [
            b.select(["source_ref", "meta", "prompt"]) for b in Ingest(spec_for(name)).batches()
        ]
        rows = pa.concat_tables(parts) if parts else None
        if rows is None or rows.num_rows == 0:
            raise EvalSetError(f"evaluation set '{name}': its source gave no prompts")
        con = duck.connect(t=rows)
        yield duck.query(
            con,
            f"SELECT {duck.sql_literal(name)} AS eval_set, min(coalesce(CASE WHEN json_valid(meta) THEN json_extract_string(meta, '$.source_id') END, regexp_extract(source_ref, '[^/]*$'))) AS eval_id, "
            "prompt FROM t WHERE prompt IS NOT NULL AND trim(prompt) <> '' GROUP BY prompt ORDER BY eval_id",
        ).cast(EVAL_PROMPTS_SCHEMA)
    for name, path in decont.eval_files.items():
        table = _file_table(name, path)
        if table.num_rows == 0:
            raise EvalSetError(f"evaluation set '{name}': {path} holds no prompts")
        yield table.cast(EVAL_PROMPTS_SCHEMA)
