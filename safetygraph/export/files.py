"""The export: JSONL and Parquet files of the canonical record, a manifest with sha256 and row counts
per file and rows per source, and a configuration lock. The manifest is written last: a build
directory without one is incomplete, and ``LATEST`` only ever names a complete build."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.records import canonical_json
from safetygraph.core.storage import Storage

EXPORT_ROOT = "exports"


def _nested_sql(table: pa.Table) -> str:
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
                  confidence := label_confidence, rationale := label_rationale, judge := judge) AS labels,
      struct_pack(content_hash := content_hash, prompt_hash := prompt_hash, pii_types := pii_types,
                  pii_count := pii_count, toxicity := toxicity) AS audit,
      {opt("split")}, {opt("cb_class")}, {opt("cb_kind")}, {opt("is_adversarial_safe")}
    FROM t ORDER BY id
    """


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_export(
    storage: Storage,
    tables: dict[str, pa.Table],
    extra_files: dict[str, str],
    lock: dict[str, Any],
    rows_per_source: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Write every table as JSONL and Parquet plus the extra text files; manifest last, then LATEST."""
    created = datetime.now(UTC)
    content = hashlib.sha256(
        canonical_json({"lock": lock["config_hash"], "rows": rows_per_source}).encode()
    ).hexdigest()[:8]
    build_id = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{content}"
    files = []
    with tempfile.TemporaryDirectory(prefix="safetygraph-export-") as tmp:
        con = duck.connect()
        for name, table in tables.items():
            duck.register(con, "t", table)
            for ext, fmt in (
                ("jsonl", "FORMAT json"),
                ("parquet", "FORMAT parquet, COMPRESSION zstd"),
            ):
                local = os.path.join(tmp, f"{name}.{ext}")
                con.execute(f"COPY ({_nested_sql(table)}) TO '{local}' ({fmt})")
                files.append((f"{name}.{ext}", local, table.num_rows))
            con.unregister("t")
        for fname, text in extra_files.items():
            local = os.path.join(tmp, fname)
            Path(local).write_text(text)
            files.append((fname, local, None))
        entries = []
        for fname, local, rows in files:
            storage.put_file(local, EXPORT_ROOT, build_id, fname)
            entries.append(
                {
                    "path": fname,
                    "sha256": _file_sha256(local),
                    "bytes": os.path.getsize(local),
                    "rows": rows,
                }
            )
    manifest = {
        "build_id": build_id,
        "created_at": created.isoformat(),
        "files": entries,
        "rows_per_source": rows_per_source,
        "config_lock": lock,
    }
    storage.write_bytes(
        json.dumps(manifest, indent=2).encode(), EXPORT_ROOT, build_id, "manifest.json"
    )
    storage.write_bytes(build_id.encode(), EXPORT_ROOT, "LATEST")
    return manifest


def verify_export(storage: Storage, build_id: str) -> list[str]:
    """Problems found re-reading a build against its manifest (empty when every file matches)."""
    try:
        manifest = json.loads(storage.read_bytes(EXPORT_ROOT, build_id, "manifest.json"))
    except FileNotFoundError:
        return [f"build {build_id} has no manifest.json: it is incomplete"]
    problems = []
    for entry in manifest["files"]:
        if not storage.exists(EXPORT_ROOT, build_id, entry["path"]):
            problems.append(f"{entry['path']}: missing")
            continue
        digest = storage.sha256(EXPORT_ROOT, build_id, entry["path"])
        if digest != entry["sha256"]:
            problems.append(
                f"{entry['path']}: sha256 {digest[:12]}… does not match the manifest's {entry['sha256'][:12]}…"
            )
        if entry["rows"] is not None and entry["path"].endswith(".jsonl"):
            with storage.fs.open(storage.path(EXPORT_ROOT, build_id, entry["path"]), "rb") as f:
                n = sum(1 for line in f if line.strip())
            if n != entry["rows"]:
                problems.append(f"{entry['path']}: {n} rows, the manifest says {entry['rows']}")
    return problems
