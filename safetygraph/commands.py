"""The ``safetygraph`` commands that need no Dagster run: the local instance's settings, verify,
validate, sources, qa, preflight and copying a build out. ``cli.py`` parses the arguments and runs
the builds."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from safetygraph.core.paths import home, resolve_data_path

# What the local instance needs (DAGSTER_HOME/dagster.yaml, shared by the CLI and `dagster dev`):
# no telemetry, no first-visit pop-up in the UI (nux), and run monitoring, so the daemon marks a run whose process died (kill -9) as failed
# instead of leaving it STARTED for good, and the run-failure alert reports it.
INSTANCE_CONFIG = {
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
    "run_monitoring": {
        "enabled": True,
        "start_timeout_seconds": 180,
        "max_resume_run_attempts": 0,
        "poll_interval_seconds": 15,
    },
}


def ensure_instance_config(path: str) -> None:
    """Add the settings above to the instance's dagster.yaml, keeping what the user set there."""
    import yaml

    body = {}
    if os.path.exists(path):
        with open(path) as f:
            body = yaml.safe_load(f) or {}
    merged = {**INSTANCE_CONFIG, **body}
    if merged != body:
        with open(path, "w") as f:
            yaml.safe_dump(merged, f, sort_keys=False)


def _prepare_env(profile: str | None) -> None:
    if profile:
        os.environ["SAFETYGRAPH_PROFILE"] = profile
    if not os.environ.get("DAGSTER_HOME"):  # unset or empty
        os.environ["DAGSTER_HOME"] = str(home() / ".dagster_home")
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    ensure_instance_config(os.path.join(os.environ["DAGSTER_HOME"], "dagster.yaml"))
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def copy_build(storage, root: str, build_id: str, dest: Path) -> None:
    """Copy a published build (files and manifest) to the local folder ``dest``, atomically: into a
    temporary sibling first, renamed when complete; an existing non-empty ``dest`` is refused."""
    import shutil
    import uuid

    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"--out {dest}: the folder exists and is not empty; give a new one")
    manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        for entry in manifest["files"]:
            target = tmp / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            storage.fs.get(storage.path(root, build_id, entry["path"]), str(target))
        body = storage.read_bytes(root, build_id, "manifest.json")
        (tmp / "manifest.json").write_bytes(body)
        if manifest.get("manifest_copy"):  # the export seed's manifest_v<version>.json
            (tmp / manifest["manifest_copy"]).write_bytes(body)
        if dest.exists():
            dest.rmdir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def verify(folder: str) -> int:
    """Re-hash every file of a build against its manifest; 0 when all match, 1 otherwise."""
    from safetygraph.core.builds import verify_build
    from safetygraph.core.storage import Storage

    path = Path(folder).resolve()
    if (path / "LATEST").is_file() and not (path / "manifest.json").exists():
        path = path / (path / "LATEST").read_text().strip()
    if not path.is_dir():
        print(f"safetygraph verify: {folder}: no such build folder", file=sys.stderr)
        return 2
    problems = verify_build(Storage(str(path.parent.parent)), path.parent.name, path.name)
    for p in problems:
        print(f"  {p}")
    manifest = path / "manifest.json"
    n = len(json.loads(manifest.read_text())["files"]) if manifest.exists() else 0
    print(
        f"{path}: "
        + (f"{len(problems)} problem(s)" if problems else f"ok, {n} files match the manifest")
    )
    return 1 if problems else 0


def _availability(spec) -> str:
    if spec.kind == "local":
        path = spec.resolved_path()
        if "://" in path:
            return "remote file (not checked)"
        import glob

        found = glob.glob(path) if glob.has_magic(path) else [path] * os.path.exists(path)
        return "ok" if found else f"MISSING: {path}"
    return "hub (not checked offline)" if spec.kind == "hf" else "url (not checked offline)"


def validate(profile: str | None) -> int:
    """Load every configuration file the build reads and check the active profile's local files."""
    _prepare_env(profile)
    from safetygraph.labeling.classifier import PROMPT_HARM_MODEL, REFUSAL_MODEL, LinearTextModel
    from safetygraph.labeling.constitution import load_constitution
    from safetygraph.recipes.steering.traits import load_traits
    from safetygraph.sources.registry import load_registry

    reg = load_registry()
    active = os.environ.get("SAFETYGRAPH_PROFILE", "demo")
    prof = reg.profile(active)
    print(
        f"registry {reg.path}: {len(reg.sources)} sources; profiles: {', '.join(sorted(reg.profiles))}"
    )
    c = load_constitution()
    print(
        f"constitution {c.path}: {len(c.harm_categories)} harm categories, {len(c.body['outcome_rules'])} outcome rules"
    )
    t = load_traits()
    steered = t.resolve(prof.steering.traits)  # an unknown trait: one-line error
    print(
        f"traits: {', '.join(t.names)}" + (f" (profile: {', '.join(steered)})" if steered else "")
    )
    for path in (REFUSAL_MODEL, PROMPT_HARM_MODEL):
        m = LinearTextModel.load(path)
        print(f"judge file {path.name}: {m.name}, {len(m.weights)} weights")
    missing = []
    recipe = list(prof.preference.sources) + list(prof.steering.sources)
    for name in dict.fromkeys([*prof.sources, *recipe, *prof.decontamination.eval_sets]):
        state = _availability(reg.source(name, active))
        missing += [name] if state.startswith("MISSING") else []
        role = " (evaluation set)" if name in prof.decontamination.eval_sets else ""
        print(f"  {name:<28} {state}{role}")
    for name, path in prof.decontamination.eval_files.items():
        resolved = resolve_data_path(path)
        state = "ok" if resolved.is_file() else f"MISSING {resolved}"
        missing += [name] if state.startswith("MISSING") else []
        print(f"  {name:<28} {state} (evaluation file)")
    print(f"profile '{active}': " + (f"{len(missing)} source file(s) missing" if missing else "ok"))
    return 1 if missing else 0


def list_sources(profile: str | None) -> int:
    _prepare_env(profile)
    from safetygraph.sources.registry import load_registry

    reg = load_registry()
    active = os.environ.get("SAFETYGRAPH_PROFILE", "demo")
    chosen = set(reg.profile(active).sources)
    for name in reg.names:
        spec = reg.source(name, active if name in chosen else None)
        mark = "*" if name in chosen else " "
        print(
            f"{mark} {name:<24} {spec.kind:<6} {spec.format:<9} {','.join(spec.roles):<28} "
            f"{spec.describe_location()}  [{_availability(spec)}]"
        )
    print(f"\n* = in profile '{active}'")
    return 0


def qa(path: str, profile: str | None, json_out: str | None) -> int:
    """QA on any JSONL file against the profile's QA thresholds; 0 when every metric passes."""
    _prepare_env(profile)
    from safetygraph.export.qa_file import QAFileError, profile_thresholds, qa_file, render
    from safetygraph.sources.registry import load_registry

    thresholds = load_registry().profile(os.environ.get("SAFETYGRAPH_PROFILE", "demo")).thresholds
    merged = profile_thresholds(thresholds)
    try:
        report = qa_file(path, merged)
    except QAFileError as exc:
        print(f"safetygraph qa: {exc}", file=sys.stderr)
        return 2
    print(render(report), end="")
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
    return 0 if report["verdict"] == "PASS" else 1


def preflight_cli(path: str, profile: str | None) -> int:
    """The stage-2 preflight on the lines of ``path``; 0 when every row passes."""
    _prepare_env(profile)
    from safetygraph.recipes.circuit_breaker.preflight import preflight_file
    from safetygraph.recipes.circuit_breaker.preflight_run import PreflightSetup
    from safetygraph.sources.registry import load_registry

    active = os.environ.get("SAFETYGRAPH_PROFILE", "demo")
    setup = PreflightSetup.from_thresholds(load_registry().profile(active).thresholds)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        print(f"safetygraph preflight: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    tok, references = setup.load()
    report = preflight_file(data, tok, setup.max_seq_length, references)
    failed = [r for r in report.to_pylist() if r["error"]]
    for r in failed[:50]:
        print(f"  {r['id']} ({r['source']}): {r['error']}")
    tokens = [t for t in report.column("tokens").to_pylist() if t is not None]
    print(
        f"{path}: {report.num_rows} rows, {len(failed)} failed; tokenizer {setup.tokenizer} "
        f"({tok.renderer}), reference {setup.target or '(none)'}, max_seq_length "
        f"{setup.max_seq_length}, longest {max(tokens, default=0)} tokens"
    )
    return 1 if failed else 0
