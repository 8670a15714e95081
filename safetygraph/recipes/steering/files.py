"""The steering files: per trait, the seed's format (``seed/<trait>.jsonl``: question, positive,
neutral) and the CAA paper's (``caa/<trait>.jsonl``: question, answer_matching_behavior,
answer_not_matching_behavior), each also as Parquet, psyctl's ``caa_dataset_<timestamp>.jsonl``
(every trait) with its ``.checkpoint.json``, ``stats.json`` and a manifest, under
``steering/<build_id>/`` (``core.builds``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.builds import (
    CardHook,
    checked_qa,
    copy_formats,
    publish,
    versioned_build_id,
)
from safetygraph.core.duck import sql_literal
from safetygraph.core.storage import Storage
from safetygraph.recipes.steering.pairs import files_sql

STEERING_ROOT = "steering"


def psyctl_files(con, folder: str, storage: Storage, build_id: str) -> list:
    """``caa_dataset_<YYYYMMDD_HHMMSS>.jsonl`` (psyctl's rows: question, positive, neutral, and
    the trait) and ``caa_dataset_<...>.checkpoint.json`` ({num_generated, output_file,
    timestamp}, as psyctl writes it when a run completes), in the local ``folder``."""
    now = datetime.now(UTC)
    name = f"caa_dataset_{now:%Y%m%d_%H%M%S}"
    local = os.path.join(folder, f"{name}.jsonl")
    sql = files_sql("t")["seed"]
    con.execute(f"COPY ({sql}) TO '{local}' (FORMAT json)")
    rows = int(con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])
    checkpoint = {
        "num_generated": rows,
        "output_file": storage.uri(STEERING_ROOT, build_id, f"{name}.jsonl"),
        "timestamp": now.isoformat(),
    }
    point = os.path.join(folder, f"{name}.checkpoint.json")
    with open(point, "w") as f:
        json.dump(checkpoint, f, indent=2)
    return [(f"{name}.jsonl", local, rows), (f"{name}.checkpoint.json", point, None)]


def write_files(
    storage: Storage,
    pairs: dict[str, pa.Table],
    stats: dict[str, Any],
    version: str | None = None,
    qa: Callable[[str], dict[str, Any]] | None = None,
    card: CardHook | None = None,
    manifest_extra: dict[str, Any] | None = None,
    qa_policy: str = "block",
) -> dict[str, Any]:
    """``pairs``: the kept pairs of each trait. With a ``version``: ``steering/v<version>/``."""
    build_id, _ = versioned_build_id(
        storage,
        STEERING_ROOT,
        version,
        {t: p.num_rows for t, p in pairs.items()} | {"stats": stats},
    )
    con = duck.connect(t=pa.concat_tables(list(pairs.values())))
    with tempfile.TemporaryDirectory(prefix="safetygraph-steering-") as tmp:
        files = []
        for fmt, sql in files_sql("t").items():
            os.makedirs(os.path.join(tmp, fmt), exist_ok=True)
            for trait, table in pairs.items():
                per_trait = sql.replace("FROM t ", f"FROM t WHERE trait = {sql_literal(trait)} ")
                files += copy_formats(con, per_trait, tmp, f"{fmt}/{trait}", table.num_rows)
        # safetygraph qa on every JSONL file; a failure under "block" publishes nothing
        # psyctl's own output: every trait's pairs in one file, and its checkpoint (same rows)
        files += psyctl_files(con, tmp, storage, build_id)
        qa_facts = checked_qa("steering", tmp, files, qa, qa_policy)
        local = os.path.join(tmp, "stats.json")
        with open(local, "w") as f:
            json.dump(stats, f, indent=2)
        files.append(("stats.json", local, None))
        return publish(
            storage,
            STEERING_ROOT,
            build_id,
            files,
            {
                "recipe": "steering",
                "version": version,
                "traits": list(pairs),
                **(manifest_extra or {}),
                **qa_facts,
            },
            card,
        )
