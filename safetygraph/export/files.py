"""The export: JSONL and Parquet files of the canonical record, a manifest with sha256 and row counts
per file and rows per source, and a configuration lock. The manifest is written last: a build
directory without one is incomplete, and ``LATEST`` only ever names a complete build."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.builds import (
    CardHook,
    copy_formats,
    publish,
    verify_build,
    versioned_build_id,
)
from safetygraph.core.storage import Storage
from safetygraph.core.tables import StoredTable, register, unregister

EXPORT_ROOT = "exports"


def _nested_sql(table: pa.Table | StoredTable) -> str:
    """The canonical nested record (the JSON Schema in schemas/) from a flat table."""
    has = set(table.column_names)

    def opt(col: str, expr: str | None = None) -> str:
        return f"{expr or col} AS {col}" if col in has else f"NULL AS {col}"

    return f"""
    SELECT id, source, source_ref, messages,
      CASE WHEN tools IS NULL THEN NULL ELSE json(tools) END AS tools,
      prompt, response, tags, category,
      CASE WHEN meta IS NULL THEN NULL ELSE json(meta) END AS meta,
      struct_pack(model := generation_model, backend := generation_backend, role := generation_role,
                  params := CASE WHEN generation_params IS NULL THEN NULL ELSE json(generation_params) END,
                  request_hash := request_hash) AS generation,
      struct_pack(outcome := label_outcome, style := label_style, harm_categories := harm_categories,
                  harmless_topics := harmless_topics, prompt_harmful := prompt_harmful,
                  response_harmful := response_harmful, response_refusal := response_refusal,
                  response_attempted := response_attempted,
                  confidence := label_confidence, rationale := label_rationale, judge := judge) AS labels,
      struct_pack(content_hash := content_hash, prompt_hash := prompt_hash, pii_types := pii_types,
                  pii_count := pii_count, toxicity := toxicity) AS audit,
      {opt("split")}, {opt("cb_class")}, {opt("cb_kind")}, {opt("is_adversarial_safe")}
    FROM t ORDER BY id
    """


def write_export(
    storage: Storage,
    tables: dict[str, pa.Table | StoredTable],
    extra_files: dict[str, str],
    lock: dict[str, Any],
    rows_per_source: dict[str, dict[str, int]],
    writers: Sequence[Callable[[str], list[tuple[str, str, int | None]]]] = (),
    version: str | None = None,
    recipe: str = "refusal",
    card: CardHook | None = None,
    manifest_extra: dict[str, Any] | None = None,
    manifest_copy: str | None = None,
) -> dict[str, Any]:
    """Write every table as JSONL and Parquet plus the extra text files and what each of
    ``writers`` writes into the local folder it is given; manifest last, then LATEST (and the
    manifest's bytes again under ``manifest_copy``, the export seed's ``manifest_v1.0.0.json``)."""
    build_id, suffix = versioned_build_id(
        storage, EXPORT_ROOT, version, {"lock": lock["config_hash"], "rows": rows_per_source}
    )
    with tempfile.TemporaryDirectory(prefix="safetygraph-export-") as tmp:
        con = duck.connect()
        files = []
        for name, table in tables.items():
            register(con, "t", table)  # a stored table: a view over its file
            files += copy_formats(con, _nested_sql(table), tmp, f"{name}{suffix}", table.num_rows)
            unregister(con, "t")
        for write in writers:
            files += write(tmp)
        for fname, text in extra_files.items():
            local = os.path.join(tmp, fname)
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            Path(local).write_text(text)
            files.append((fname, local, None))
        return publish(
            storage,
            EXPORT_ROOT,
            build_id,
            files,
            {
                "created_at": datetime.now(UTC).isoformat(),
                "recipe": recipe,
                "version": version or None,
                "rows_per_source": rows_per_source,
                "config_lock": lock,
                **(manifest_extra or {}),
            },
            card,
            manifest_copy=manifest_copy,
        )


def verify_export(storage: Storage, build_id: str) -> list[str]:
    """Problems found re-reading an export build against its manifest (empty when all match)."""
    return verify_build(storage, EXPORT_ROOT, build_id)
