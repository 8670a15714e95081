"""The stage-2 files the training plan reads: per-source shard files, the train and eval files, the
validation report and stats, then a manifest (written last) and ``LATEST``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.builds import CardHook, write_card
from safetygraph.core.duck import sql_literal
from safetygraph.core.records import canonical_json
from safetygraph.core.storage import Storage
from safetygraph.core.tables import StoredTable, connect
from safetygraph.core.version import __version__
from safetygraph.recipes.circuit_breaker.preflight import ROW_SCHEMA
from safetygraph.recipes.circuit_breaker.records import records_sql

# The file of harmful/ or retain/ that holds a row (each row is in exactly one): a source that names
# the plan's file (registry ``stage2_files``: agentdojo_failures, tau2_traces, ...) sends its rows
# there; the other rows go to one file per sample kind. Adversarial-safe answers are always
# retain/adversarial_safe.jsonl, the plan's critical file, whichever attack they answer.
KIND_FILES = {
    "attack_success": "attack_successes",
    "harmful_completion": "harmful_completions",
    "attempted_compliance": "attempted_compliance",
    "adversarial_safe": "adversarial_safe",
    "attack_resisted": "attacks_resisted",
    "agent_trace": "agent_traces",
    "general_chat": "general_chat",
    "borderline_compliance": "borderline_compliance",
    "harmful_refusal": "harmful_refusals",
    "benign_answer": "benign_answers",
}


def file_sql(shard: str, names: Mapping[str, Mapping[str, str]]) -> str:
    """SQL: the file stem of a row of the ``shard`` (harmful or retain) set."""
    named = " ".join(
        f"WHEN source = {sql_literal(src)} THEN {sql_literal(files[shard])}"
        for src, files in sorted(names.items())
        if shard in files
    )
    by_kind = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in KIND_FILES.items())
    return (
        "CASE WHEN cb_kind = 'adversarial_safe' THEN 'adversarial_safe' "
        f"{named} ELSE coalesce(CASE cb_kind {by_kind} END, cb_kind) END"
    )


STAGE2_ROOT = "circuit_breaker"


def _stage2_views(
    samples: pa.Table | StoredTable,
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    held_out_sources: tuple[str, ...],
    held_out_hashes: pa.Array | None,
) -> Any:
    """A connection with views h and r (Ds, Dr), tr, ev and eo (the held-out rows of eval)."""
    con = connect(
        s0=samples,
        tr=train,
        ev0=evals,
        held=pa.table(
            {
                "prompt_hash": (
                    held_out_hashes if held_out_hashes is not None else pa.array([], pa.string())
                )
            }
        ).cast(pa.schema([("prompt_hash", pa.string())])),
    )
    keep = (
        f"source NOT IN ({', '.join(sql_literal(s) for s in held_out_sources)})"
        if held_out_sources
        else "TRUE"
    )
    keep += " AND prompt_hash NOT IN (SELECT prompt_hash FROM held)"
    for name, where in (("h", "cb_class = 'harmful'"), ("r", "cb_class = 'retain'")):
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM s0 WHERE {where} AND {keep}")
    con.execute(f"CREATE TEMP VIEW ev AS SELECT * FROM ev0 WHERE {keep}")
    con.execute(f"CREATE TEMP VIEW eo AS SELECT * FROM ev0 WHERE NOT ({keep})")
    return con


def _write_jsonl(
    storage: Storage,
    build_id: str,
    con: Any,
    parts: tuple[str, ...],
    table: str,
    split: bool = False,
    where: str = "",
) -> dict[str, Any]:
    """The manifest entry of the JSONL file ``parts`` written from the rows of ``table``."""
    # streamed from DuckDB into the file (atomically), hashed on the way: never whole in memory
    rows, size, h = 0, 0, hashlib.sha256()
    with storage.open_atomic(STAGE2_ROOT, build_id, *parts) as f:
        for batch in duck.stream(con, records_sql(table, split, where, "id"), 20_000):
            data = ("\n".join(batch.column(0).to_pylist()) + "\n").encode("utf-8")
            f.write(data)
            h.update(data)
            size += len(data)
            rows += batch.num_rows
    by_source = duck.rows(
        con, f"SELECT source, count(*) FROM {table} {where} GROUP BY 1 ORDER BY 1"
    )
    return {
        "path": "/".join(parts),
        "rows": rows,
        "bytes": size,
        "sha256": h.hexdigest(),
        "sources": {str(k): int(v) for k, v in by_source},
    }


def _write_jsonl_files(
    storage: Storage, build_id: str, con: Any, file_names: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    """The manifest entries of the harmful/, retain/ and stage2/ JSONL files, once written."""
    entries = []
    for name, shard in (("harmful", "h"), ("retain", "r")):
        stem = file_sql(name, file_names)
        con.execute(f"CREATE TEMP VIEW {shard}f AS SELECT *, {stem} AS __file FROM {shard}")
        stems = [r[0] for r in duck.rows(con, f"SELECT DISTINCT __file FROM {shard}f ORDER BY 1")]
        for value in stems:
            entries.append(
                _write_jsonl(
                    storage,
                    build_id,
                    con,
                    (name, f"{value}.jsonl"),
                    f"{shard}f",
                    where=f"WHERE __file = {sql_literal(value)}",
                )
            )
    # the plan's merge inputs and outputs: the whole Ds and Dr, then the split
    for name, t in (("harmful", "h"), ("retain", "r")):
        entries.append(_write_jsonl(storage, build_id, con, ("stage2", f"{name}.jsonl"), t))
    for name, t in (("train", "tr"), ("eval", "ev"), ("eval_only", "eo")):
        entries.append(
            _write_jsonl(storage, build_id, con, ("stage2", f"{name}.jsonl"), t, split=True)
        )
    return entries


def _write_reports(
    storage: Storage,
    build_id: str,
    validation_report: dict[str, Any],
    stats_body: dict[str, Any],
    extra_reports: dict[str, str] | None,
) -> list[dict[str, Any]]:
    """The manifest entries of the reports and the row schema file, once written."""
    reports = {
        ("stage2", "validation_report.json"): json.dumps(validation_report, indent=2).encode(),
        ("stage2", "stats.json"): json.dumps(stats_body, indent=2).encode(),
        **{("stage2", name): text.encode() for name, text in (extra_reports or {}).items()},
        # the plan's schema file: the JSON Schema every line above was checked against
        ("schemas", "canonical_sample_schema.json"): ROW_SCHEMA.read_bytes(),
    }
    entries = []
    for parts, data in reports.items():
        storage.write_bytes(data, STAGE2_ROOT, build_id, *parts)
        entries.append(
            {
                "path": "/".join(parts),
                "rows": 0,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return entries


def write_files(
    storage: Storage,
    build_id: str,
    samples: pa.Table | StoredTable,
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    validation_report: dict[str, Any],
    stats_body: dict[str, Any],
    extra_reports: dict[str, str] | None = None,
    manifest_extra: dict[str, Any] | None = None,
    card: CardHook | None = None,
    held_out_sources: tuple[str, ...] = (),
    held_out_hashes: pa.Array | None = None,
    file_names: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The stage-2 layout of ``samples`` (the merged set, Ds and Dr by ``cb_class``, after the
    over-length drop and the retain downsampling: exactly the rows of train and eval) under
    ``circuit_breaker/<build_id>/``: harmful/<file>.jsonl and
    retain/<file>.jsonl, each row in exactly one file (``file_sql``: the plan's names where the
    source gives them, else one file per sample kind), stage2/harmful.jsonl and
    stage2/retain.jsonl (the whole Ds and Dr), stage2/train.jsonl and stage2/eval.jsonl (the
    holdout of the trainable rows), stage2/eval_only.jsonl, the reports under stage2/
    (validation_report.json, stats.json and ``extra_reports``: the QA report),
    schemas/canonical_sample_schema.json (the row schema), then manifest.json
    (sha256, rows and rows per source for each file) last and ``LATEST`` after it: a folder
    without a manifest is incomplete. Every file is written atomically. The rows of
    ``held_out_sources`` (evaluation sets the profile builds from) and of ``held_out_hashes``
    (their copies in other sources, which the split holds on the eval side with them) are in
    stage2/eval_only.jsonl only: never in harmful/, retain/, the whole-set files, train or eval."""
    con = _stage2_views(samples, train, evals, held_out_sources, held_out_hashes)
    entries = _write_jsonl_files(storage, build_id, con, file_names or {})
    entries += _write_reports(storage, build_id, validation_report, stats_body, extra_reports)
    if card is not None:
        written, tokens = write_card(
            storage,
            STAGE2_ROOT,
            build_id,
            card,
            entries,
            lambda p: storage.fs.open(storage.path(STAGE2_ROOT, build_id, p), "rb"),
        )
        entries += written
        manifest_extra = {**(manifest_extra or {}), "token_stats": tokens}
    manifest = {"build_id": build_id, "safetygraph_version": __version__, **(manifest_extra or {})}
    manifest["files"] = entries
    storage.write_bytes(canonical_json(manifest).encode(), STAGE2_ROOT, build_id, "manifest.json")
    storage.write_bytes(build_id.encode(), STAGE2_ROOT, "LATEST")
    return manifest
