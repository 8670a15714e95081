"""Builds: a folder of files published under ``<root>/<build_id>/`` with a manifest.

Each file is copied atomically; the manifest (sha256, bytes and rows per file) is written last and
``<root>/LATEST`` after it, so a folder without a manifest is incomplete and LATEST only ever names
a complete build. ``verify_build`` re-reads a build against its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from safetygraph.core.records import canonical_json
from safetygraph.core.storage import Storage
from safetygraph.core.version import __version__


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_build_id(content: Any) -> str:
    """A build id: UTC time, then 8 hex digits of the build's content (sortable, and two builds of
    different content in the same second still differ)."""
    created = datetime.now(UTC)
    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()[:8]
    return f"{created.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")


class ExportVersionError(ValueError):
    pass


def versioned_build_id(
    storage: Storage, root: str, version: str | None, content: Any
) -> tuple[str, str]:
    """(build id, file suffix). Without a version: a fresh time-and-content id and no suffix. With
    one (``1.0.0``): the folder ``v1.0.0`` and files named ``<name>_v1.0.0.<ext>`` (the export
    seed's ``dataset_v1.0.0.jsonl``); a released
    version is never overwritten."""
    if not version:
        return new_build_id(content), ""
    if not VERSION_RE.match(version):
        raise ExportVersionError(
            f"export version {version!r}: use letters, digits and . + _ - (e.g. 1.0.0)"
        )
    build_id = f"v{version}"
    if storage.exists(root, build_id, "manifest.json"):
        raise ExportVersionError(
            f"{storage.uri(root, build_id)} already holds a complete export of version {version}: "
            "a released version is never overwritten; give a new --version"
        )
    return build_id, f"_v{version}"


def copy_formats(
    con, sql: str, folder: str, name: str, rows: int
) -> list[tuple[str, str, int | None]]:
    """``sql``'s result as ``<name>.jsonl`` and ``<name>.parquet`` (zstd) in the local ``folder``:
    ``(file name, local path, rows)`` for :func:`publish`."""
    out = []
    for ext, fmt in (("jsonl", "FORMAT json"), ("parquet", "FORMAT parquet, COMPRESSION zstd")):
        local = os.path.join(folder, f"{name}.{ext}")
        con.execute(f"COPY ({sql}) TO '{local}' ({fmt})")
        out.append((f"{name}.{ext}", local, rows))
    return out


FILES_QA_POLICIES = ("block", "warn")


class QAFailedError(RuntimeError):
    """A recipe's files failed their QA and the profile blocks on it (thresholds.files_qa)."""


def qa_reports(
    folder: str,
    files: list[tuple[str, str, int | None]],
    qa: Callable[[str], dict[str, Any]],
) -> tuple[tuple[str, str, None], dict[str, Any]]:
    """``qa_report.json`` in the local ``folder``: ``qa`` run on every JSONL file of ``files``,
    keyed by its name in the build. Returns the ``(file name, local path, rows)`` entry for
    ``publish`` and the summary for the manifest (:func:`qa_summary`)."""
    reports = {f: {**qa(path), "file": f} for f, path, _rows in files if f.endswith(".jsonl")}
    local = os.path.join(folder, "qa_report.json")
    with open(local, "w") as out:
        json.dump(reports, out, indent=2)
    return ("qa_report.json", local, None), qa_summary(reports)


def checked_qa(
    recipe: str,
    folder: str,
    files: list[tuple[str, str, int | None]],
    qa: Callable[[str], dict[str, Any]] | None,
    policy: str,
) -> dict[str, Any]:
    """The QA of a recipe's files before they are published: ``qa_report.json`` appended to
    ``files`` and ``{"qa_summary": ...}`` for the manifest; a failure under the ``block`` policy
    raises (:func:`qa_gate`). Without ``qa``, nothing."""
    if qa is None:
        return {}
    entry, summary = qa_reports(folder, files, qa)
    qa_gate(recipe, summary, policy)
    files.append(entry)
    return {"qa_summary": summary}


def qa_summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per file: the verdict and each failed metric as one line (``value op threshold``), and the
    failed Great Expectations expectations where the report has them."""

    def num(x: Any) -> str:
        return f"{x:g}" if isinstance(x, int | float) and not isinstance(x, bool) else str(x)

    out = {}
    for name, report in reports.items():
        failed = [
            f"{m['metric']} {num(m['value'])} (must be {m['op']} {num(m['threshold'])})"
            for m in report["metrics"]
            if not m["passed"]
        ]
        gx = [r for r in report.get("great_expectations") or () if not r.get("success", True)]
        failed += [f"great expectation {r.get('expectation', r)} failed" for r in gx]
        out[name] = {"verdict": report["verdict"], "failed": failed}
    return out


def qa_gate(recipe: str, summary: dict[str, Any], policy: str) -> list[str]:
    """The files whose QA failed, as lines; with the ``block`` policy a failure raises before
    anything is published."""
    if policy not in FILES_QA_POLICIES:
        raise QAFailedError(f"thresholds.files_qa {policy!r}: use block or warn")
    failed = [
        f"{name}: {'; '.join(s['failed'])}" for name, s in summary.items() if s["verdict"] != "PASS"
    ]
    if failed and policy == "block":
        raise QAFailedError(
            f"{recipe} files not published: their QA failed ({' | '.join(failed)}); fix the data, "
            "or set thresholds.files_qa: warn in the profile to publish them with a failed "
            "files_qa warning"
        )
    return failed


# a build's dataset card: (the file entries written, an opener of a file by its path in the build)
# -> the README.md text and the token statistics per file, or why there are none
# (safetygraph.export.card.card_file)
CardHook = Callable[
    [list[dict[str, Any]], Callable[[str], IO[bytes]]], tuple[str, dict[str, Any] | str | None]
]


def write_card(
    storage: Storage,
    root: str,
    build_id: str,
    card: CardHook,
    entries: list[dict[str, Any]],
    opener: Callable[[str], IO[bytes]],
) -> tuple[list[dict[str, Any]], dict[str, Any] | str | None]:
    """README.md (the dataset card) and token_stats.json in the build, before its manifest: their
    manifest entries, and the token statistics (for the manifest too)."""
    content, tokens = card(entries, opener)
    written = []
    files = {"README.md": content.encode("utf-8")}
    if isinstance(tokens, dict):
        files["token_stats.json"] = json.dumps(tokens, indent=2).encode()
    for name, data in files.items():
        storage.write_bytes(data, root, build_id, name)
        written.append(
            {
                "path": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "rows": None,
            }
        )
    return written, tokens


def publish(
    storage: Storage,
    root: str,
    build_id: str,
    files: list[tuple[str, str, int | None]],
    manifest_extra: dict[str, Any],
    card: CardHook | None = None,
    manifest_copy: str | None = None,
) -> dict[str, Any]:
    """Copy the local ``files`` (name, path, rows) under ``root/build_id/`` atomically, then the
    manifest (sha256, bytes and rows per file, plus ``manifest_extra``) last and ``root/LATEST``
    after it: a build folder without a manifest is incomplete, and LATEST only names complete ones.
    ``manifest_copy``: a second name for the manifest's bytes, written just before it."""
    entries = []
    for fname, local, rows in files:
        storage.put_file(local, root, build_id, fname)
        entries.append(
            {
                "path": fname,
                "sha256": _file_sha256(local),
                "bytes": os.path.getsize(local),
                "rows": rows,
            }
        )
    if card is not None:
        local = {fname: path for fname, path, _rows in files}

        def opener(path: str) -> IO[bytes]:
            return open(local[path], "rb")  # noqa: SIM115 - the card reader closes it

        written, tokens = write_card(storage, root, build_id, card, entries, opener)
        entries += written
        manifest_extra = {**manifest_extra, "token_stats": tokens}
    manifest = {"build_id": build_id, "safetygraph_version": __version__, **manifest_extra}
    if manifest_copy:
        manifest["manifest_copy"] = manifest_copy
    manifest["files"] = entries
    body = json.dumps(manifest, indent=2).encode()
    if manifest_copy:
        storage.write_bytes(body, root, build_id, manifest_copy)
    storage.write_bytes(body, root, build_id, "manifest.json")
    storage.write_bytes(build_id.encode(), root, "LATEST")
    return manifest


def verify_build(storage: Storage, root: str, build_id: str) -> list[str]:
    """Problems found re-reading a build under ``root`` against its manifest (empty when every file
    matches)."""
    try:
        manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
    except FileNotFoundError:
        return [f"build {build_id} has no manifest.json: it is incomplete"]
    problems = []
    for entry in manifest["files"]:
        if not storage.exists(root, build_id, entry["path"]):
            problems.append(f"{entry['path']}: missing")
            continue
        digest = storage.sha256(root, build_id, entry["path"])
        if digest != entry["sha256"]:
            problems.append(
                f"{entry['path']}: sha256 {digest[:12]}… does not match the manifest's {entry['sha256'][:12]}…"
            )
        if entry["rows"] is not None and entry["path"].endswith(".jsonl"):
            with storage.fs.open(storage.path(root, build_id, entry["path"]), "rb") as f:
                n = sum(1 for line in f if line.strip())
            if n != entry["rows"]:
                problems.append(f"{entry['path']}: {n} rows, the manifest says {entry['rows']}")
    return problems


BUILD_ROOTS = ("exports", "circuit_breaker", "preference", "steering")


def incomplete(storage: Storage, min_age_s: float = 3600.0) -> list[str]:
    """What a crashed or killed run left behind, older than ``min_age_s``: build folders without a
    ``manifest.json`` (the manifest is written last, so they never completed) and temporary files
    (``*.tmp-<uuid>``) of interrupted atomic writes, anywhere under the base URI. A complete build,
    and anything younger than ``min_age_s`` (a run may be writing it now), is never listed."""
    import time

    now = time.time()

    def old(path: str) -> bool:
        try:
            modified = storage.fs.modified(path).timestamp()
        except (FileNotFoundError, NotImplementedError, AttributeError):
            return False
        return now - modified >= min_age_s

    found = []
    for root in BUILD_ROOTS:
        for name in storage.listdir(root):
            folder = storage.path(root, name)
            if name == "LATEST" or not storage.fs.isdir(folder):
                continue
            if not storage.exists(root, name, "manifest.json") and old(folder):
                found.append(folder)
    if storage.fs.exists(storage.path()):
        for path in storage.fs.find(storage.path()):
            if ".tmp-" in path.rsplit("/", 1)[-1] and old(path):
                found.append(path)
    return sorted(set(found))


def clean(storage: Storage, min_age_s: float = 3600.0, dry_run: bool = False) -> list[str]:
    """Remove what :func:`incomplete` lists (nothing with ``dry_run``); returns the paths."""
    paths = incomplete(storage, min_age_s)
    if not dry_run:
        for path in paths:
            if storage.fs.exists(path):
                storage.fs.rm(path, recursive=True)
    return paths
