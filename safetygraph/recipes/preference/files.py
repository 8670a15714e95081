"""The preference files: ``train.jsonl``/``.parquet`` and ``eval.jsonl``/``.parquet`` in TRL's format,
``stats.json``, and a manifest, under ``preference/<build_id>/`` (``core.builds``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
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
from safetygraph.core.storage import Storage
from safetygraph.recipes.preference.dataset import trl_sql
from safetygraph.recipes.preference.seed_files import write_seed_files

PREFERENCE_ROOT = "preference"


def write_files(
    storage: Storage,
    train: pa.Table,
    evals: pa.Table,
    fmt: str,
    system_prompt: str | None,
    stats: dict[str, Any],
    version: str | None = None,
    qa: Callable[[str], dict[str, Any]] | None = None,
    card: CardHook | None = None,
    manifest_extra: dict[str, Any] | None = None,
    qa_policy: str = "block",
    upstream: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the TRL files of both splits and the medical seed's two files
    (``recipes.preference.seed_files``; ``upstream``: registry source -> upstream dataset id);
    the manifest records the format and the stats. With a ``version`` the build is
    ``preference/v<version>/`` (``core.builds.versioned_build_id``)."""
    build_id, _ = versioned_build_id(
        storage,
        PREFERENCE_ROOT,
        version,
        {"format": fmt, "train": train.num_rows, "eval": evals.num_rows, **stats},
    )
    con = duck.connect(tr=train, ev=evals)
    with tempfile.TemporaryDirectory(prefix="safetygraph-preference-") as tmp:
        files = [
            *copy_formats(con, trl_sql(fmt, system_prompt, "tr"), tmp, "train", train.num_rows),
            *copy_formats(con, trl_sql(fmt, system_prompt, "ev"), tmp, "eval", evals.num_rows),
        ]
        # safetygraph qa on every JSONL file; a failure under "block" publishes nothing
        # the seed's files: the same pairs (train and eval together), QA-checked like ours
        files += write_seed_files(con, tmp, system_prompt, upstream or {})
        qa_facts = checked_qa("preference", tmp, files, qa, qa_policy)
        local = os.path.join(tmp, "stats.json")
        with open(local, "w") as f:
            json.dump(stats, f, indent=2)
        files.append(("stats.json", local, None))
        return publish(
            storage,
            PREFERENCE_ROOT,
            build_id,
            files,
            {
                "recipe": "preference",
                "version": version,
                "format": fmt,
                "training_system_prompt": system_prompt,
                **(manifest_extra or {}),
                **qa_facts,
            },
            card,
        )
