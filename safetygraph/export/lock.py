"""The configuration lock: what produced a build (code commit, configuration hash, seed, interpreter,
platform and package versions), recorded in every export manifest."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from safetygraph.core.paths import CHECKOUT_ROOT


def config_lock(
    config_files: list[str], profile: str, seed: int, profile_set: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What produced this build: code commit, configuration hash, seed, interpreter and packages.
    ``profile_set``: the settings the command line laid over the profile (``--judge``,
    ``--sources``, ``--target-samples``, ...), part of the hash."""
    h = hashlib.sha256()
    for path in sorted(config_files):
        h.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    h.update(f"profile={profile};seed={seed}".encode())
    if profile_set:
        h.update(json.dumps(profile_set, sort_keys=True).encode())
    commit, dirty = "unknown", None
    try:
        root = CHECKOUT_ROOT or Path.cwd()  # an installed package has no commit of its own
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    versions = {}
    for pkg in (
        "safetygraph",
        "dagster",
        "duckdb",
        "pyarrow",
        "pandas",
        "pandera",
        "great-expectations",
        "datasets",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "config_hash": h.hexdigest(),
        "config_files": [Path(p).name for p in sorted(config_files)],
        "profile": profile,
        "profile_set": profile_set or {},
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def config_snapshot(config_files: list[str]) -> dict[str, str]:
    """The configuration a lock hashes, file by file (name -> text): what config_lock.json carries
    beside the hash, so a build can be reproduced from its lock alone (secrets are never in these
    files: they come from environment variables)."""
    return {Path(p).name: Path(p).read_text() for p in sorted(config_files)}
