"""``safetygraph``: run the build from the command line on a persistent local Dagster instance.

    safetygraph demo                 # every source partition of the profile, then the datasets and export
    safetygraph demo --profile shared
    safetygraph sources              # list the registry and the active profile
    safetygraph review-import FILE   # agreement of a filled-in review sample with the judge
    safetygraph cleanup [--dry-run]  # remove incomplete build folders and temporary files

Runs are recorded in DAGSTER_HOME (default: .dagster_home in the repo), so ``dagster dev`` shows
them afterwards with their check results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from safetygraph.core.paths import REPO_ROOT

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
        os.environ["DAGSTER_HOME"] = str(REPO_ROOT / ".dagster_home")
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    ensure_instance_config(os.path.join(os.environ["DAGSTER_HOME"], "dagster.yaml"))
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # the code location lives at the repo root
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _metadata_line(metadata: dict, limit: int = 300) -> str:
    """A check's metadata as one short line (what failed, by how much)."""
    parts = []
    for k, v in metadata.items():
        value = getattr(v, "value", v)
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        parts.append(f"{k}={' '.join(text.split())[:120]}")
    line = "; ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _check_lines(result) -> tuple[list[str], int]:
    lines, failed = [], 0
    for ev in result.get_asset_check_evaluations():
        key = ev.asset_check_key
        status = "pass" if ev.passed else f"FAIL ({ev.severity.value})"
        failed += not ev.passed
        line = f"    check {key.asset_key.to_user_string()}:{key.name} {status}"
        if not ev.passed:
            line += f": {_metadata_line(ev.metadata)}"
        lines.append(line)
    return lines, failed


def _cause(message: str) -> str:
    """The first line of a step's error without Dagster's exception class prefix."""
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    for prefix in ("dagster._core.definitions.events.Failure: ", "dagster._core.errors."):
        if first.startswith(prefix):
            first = first[len(prefix) :]
    return first


def run_build(
    profile: str | None = None,
    verbose: bool = False,
    only: Sequence[str] = (),
    allow_partial: bool = False,
    only_sources: bool = False,
) -> int:
    """Every job of the profile: the per-source chains, then the merges and files. ``only`` builds
    a subset of the profile's sources, ``allow_partial`` lets the merges take the sources that are
    ready, ``only_sources`` stops after the per-source chains."""
    _prepare_env(profile)
    from dagster import DagsterInstance

    import definitions

    defs = definitions.defs
    settings = definitions.default_settings()
    instance = DagsterInstance.get()
    started = time.perf_counter()
    sources = settings.active().sources
    if only:
        unknown = [n for n in only if n not in sources]
        if unknown:
            from safetygraph.sources.registry import RegistryError

            raise RegistryError(
                f"--sources {','.join(unknown)}: not in profile '{settings.profile}'; its sources: "
                f"{', '.join(sources)}"
            )
        sources = tuple(n for n in sources if n in only)
    print(
        f"safetygraph: profile '{settings.profile}', {len(sources)} sources, data under {settings.base_uri}"
    )
    logs = {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "ERROR"}}}}
    merges = {"refusal_dataset", "preference_split", "steering_files"}

    def run(job_name: str, label: str, partition: str | None = None) -> bool:
        t0 = time.perf_counter()
        job = defs.resolve_job_def(job_name)
        run_config = dict(logs)
        if allow_partial:
            ops = {n: {"config": {"allow_partial": True}} for n in merges if job.has_node_named(n)}
            if ops:
                run_config["ops"] = ops
        print(f"  [{label}] running...", flush=True)
        result = job.execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False, run_config=run_config
        )
        lines, failed = _check_lines(result)
        mats = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        what = f" ({', '.join(mats)})" if partition is None else ""
        print(
            f"  [{label}] {'ok' if result.success else 'FAILED'}: {len(mats)} assets materialized{what}, "
            f"{len(lines) - failed}/{len(lines)} checks passed ({time.perf_counter() - t0:.1f}s)"
        )
        if verbose or not result.success:
            shown = [line for line in lines if verbose or " FAIL " in line]
            if shown:
                print("\n".join(shown))
            for ev in result.get_step_failure_events():
                cause = _cause(ev.event_specific_data.error.message)
                if cause.startswith("DagsterAssetCheckFailedError"):
                    continue  # the failed check is printed above, with its figures
                print(f"    step {ev.step_key} failed: {cause}")
                first_failure.setdefault("at", f"[{label}] step {ev.step_key}: {cause}")
            if not result.success and "at" not in first_failure:
                failed_checks = [line.strip() for line in lines if " FAIL " in line]
                first_failure["at"] = f"[{label}] {failed_checks[0] if failed_checks else 'failed'}"
        return result.success

    first_failure: dict[str, str] = {}

    ok = True
    for name in sources:
        ok &= run(definitions.SOURCE_JOB, name, name)
    if only_sources:
        print(f"\n{'done' if ok else 'FAILED'}: per-source chains only (--only-sources)")
        return 0 if ok else 1
    datasets_ok = run(definitions.DATASET_JOB, "datasets")
    ok &= datasets_ok
    preference_sources = list(settings.active().preference.get("sources") or ())
    for name in preference_sources:
        ok &= run(definitions.PREFERENCE_SOURCE_JOB, f"preference:{name}", name)
    preference_ok = bool(preference_sources) and run(definitions.PREFERENCE_JOB, "preference")
    ok &= preference_ok or not preference_sources
    steering = settings.active().steering
    steering_ok = False
    if steering.get("sources"):
        for name in steering["sources"]:
            ok &= run(definitions.INGEST_JOB, f"steering:{name}", name)
        for trait in steering.get("traits") or settings.traits().names:
            ok &= run(definitions.STEERING_TRAIT_JOB, f"steering:{trait}", trait)
        steering_ok = run(definitions.STEERING_JOB, "steering")
        ok &= steering_ok
    storage = settings.storage()
    for built, root, title in (
        (datasets_ok, "exports", "export"),
        (datasets_ok, "circuit_breaker", "circuit-breaker stage 2"),
        (preference_ok, "preference", "preference pairs (TRL)"),
        (steering_ok, "steering", "steering pairs (seed and CAA formats)"),
    ):
        if built:
            _print_build(storage, root, title)
    if not ok and first_failure:
        print(f"\nfirst failure: {first_failure['at']}")
    print(
        f"\n{'done' if ok else 'FAILED'} in {time.perf_counter() - started:.1f}s; runs recorded in DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
    )
    return 0 if ok else 1


def _print_build(storage, root: str, title: str) -> None:
    """The newest complete build under ``root``: its folder, manifest and files."""
    if not storage.exists(root, "LATEST"):
        return
    build_id = storage.read_bytes(root, "LATEST").decode()
    manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
    fmt = f" ({manifest['format']})" if manifest.get("format") else ""
    print(f"\n{title}{fmt}: {storage.uri(root, build_id)}")
    print(f"manifest: {storage.uri(root, build_id, 'manifest.json')}")
    for f in manifest["files"]:
        rows = f"{f['rows']} rows" if f["rows"] is not None and f["path"].endswith(".jsonl") else ""
        print(f"  {f['path']:<36} {rows:>12}  sha256 {f['sha256'][:16]}…")


def cleanup(profile: str | None, min_age_s: float, dry_run: bool) -> int:
    _prepare_env(profile)
    import definitions
    from safetygraph.core.builds import clean

    storage = definitions.default_settings().storage()
    paths = clean(storage, min_age_s, dry_run)
    for path in paths:
        print(f"{'would remove' if dry_run else 'removed'} {path}")
    print(f"{len(paths)} incomplete build folder(s) or temporary file(s) under {storage.base_uri}")
    return 0


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
    print(f"traits: {', '.join(t.names)}")
    for path in (REFUSAL_MODEL, PROMPT_HARM_MODEL):
        m = LinearTextModel.load(path)
        print(f"judge file {path.name}: {m.name}, {len(m.weights)} weights")
    missing = []
    recipe = list(prof.preference.get("sources") or ()) + list(prof.steering.get("sources") or ())
    for name in list(prof.sources) + recipe:
        state = _availability(reg.source(name, active))
        missing += [name] if state.startswith("MISSING") else []
        print(f"  {name:<28} {state}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="safetygraph",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo", help="materialize every asset for every source partition of the profile"
    )
    p.add_argument(
        "--profile",
        default=None,
        help="profile from config/profiles.yaml (default: $SAFETYGRAPH_PROFILE or demo)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every check result")
    p.add_argument(
        "--sources", default="", help="comma-separated: build only these sources of the profile"
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge the sources that are ready and report the others (default: a blocked source stops the merge)",
    )
    p.add_argument(
        "--only-sources", action="store_true", help="the per-source chains only, no merge or files"
    )
    v = sub.add_parser(
        "verify", help="re-hash a build folder (or its root, via LATEST) against its manifest"
    )
    v.add_argument("folder", help="e.g. .safetygraph/data/exports/<build_id> or .../exports")
    lint = sub.add_parser(
        "validate",
        help="lint the registry, profiles, constitution, traits and judge files; check local source files exist",
    )
    lint.add_argument("--profile", default=None)
    s = sub.add_parser("sources", help="list the registry's sources")
    s.add_argument("--profile", default=None)
    r = sub.add_parser(
        "review-import", help="agreement of a filled-in review_sample.csv with the judge"
    )
    r.add_argument("file", help="the review sample CSV with human_outcome filled in")
    c = sub.add_parser(
        "cleanup",
        help="remove build folders without a manifest and temporary files left by killed runs",
    )
    c.add_argument("--profile", default=None)
    c.add_argument("--min-age", type=float, default=3600.0, help="seconds; younger ones are kept")
    c.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:  # the output went to `head` or the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return 0
    except CONFIG_ERRORS as exc:
        # a configuration mistake: one line that names the file and the fix, no traceback
        print(f"safetygraph: error: {exc}", file=sys.stderr)
        return 2


def _config_errors() -> tuple[type[BaseException], ...]:
    from safetygraph.labeling.classifier import ClassifierError
    from safetygraph.labeling.constitution import ConstitutionError
    from safetygraph.recipes.circuit_breaker.preflight import PreflightError
    from safetygraph.recipes.steering.traits import TraitsError
    from safetygraph.sources.registry import RegistryError

    return (RegistryError, ConstitutionError, TraitsError, ClassifierError, PreflightError)


CONFIG_ERRORS = _config_errors()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "cleanup":
        return cleanup(args.profile, args.min_age, args.dry_run)
    if args.command == "demo":
        only = tuple(x.strip() for x in args.sources.split(",") if x.strip())
        return run_build(args.profile, args.verbose, only, args.allow_partial, args.only_sources)
    if args.command == "verify":
        return verify(args.folder)
    if args.command == "validate":
        return validate(args.profile)
    if args.command == "review-import":
        from safetygraph.labeling.review import ReviewFileError, review_agreement

        try:
            with open(args.file, encoding="utf-8") as f:
                print(json.dumps(review_agreement(f.read()), indent=2))
        except (OSError, ReviewFileError) as exc:
            print(f"safetygraph review-import: {args.file}: {exc}", file=sys.stderr)
            return 2
        return 0
    return list_sources(args.profile)


if __name__ == "__main__":
    sys.exit(main())
