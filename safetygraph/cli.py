"""``safetygraph``: run the build from the command line on a persistent local Dagster instance.

    safetygraph demo                 # every source partition of the profile, then every recipe's files
    safetygraph demo --profile shared
    safetygraph build RECIPE [--profile P] [--sources a,b] [--out DIR] [--version X]
                                     # one recipe: refusal, circuit_breaker, preference, steering
    safetygraph qa FILE              # QA on any JSONL file (format, duplicates, PII, labels, mix)
    safetygraph preflight FILE       # the stage-2 tokenizer preflight on any stage-2 JSONL file
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
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from safetygraph.commands import (
    _prepare_env,
    copy_build,
    list_sources,
    preflight_cli,
    qa,
    validate,
    verify,
)


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
    """The first line of a step's error without a module-qualified exception class prefix
    (Dagster's or the user error's own ``package.module.ClassName: ``)."""
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ", "", first)


RECIPES = ("refusal", "circuit_breaker", "preference", "steering")
# each recipe's files asset, and the folder its builds are published under
RECIPE_FILES = {
    "refusal": ("export", "exports", "refusal export"),
    "circuit_breaker": ("stage2_files", "circuit_breaker", "circuit-breaker stage 2"),
    "preference": ("preference_files", "preference", "preference pairs (TRL)"),
    "steering": ("steering_files", "steering", "steering pairs (seed and CAA formats)"),
}


def run_build(
    profile: str | None = None,
    verbose: bool = False,
    only: Sequence[str] = (),
    allow_partial: bool = False,
    only_sources: bool = False,
    recipes: Sequence[str] = RECIPES,
    version: str | None = None,
    out: str | None = None,
) -> int:
    """The jobs of the profile for ``recipes``: the per-source chains, then the merges and files.
    ``only`` builds a subset of the profile's sources, ``allow_partial`` lets the merges take the
    sources that are ready, ``only_sources`` stops after the per-source chains. Each recipe's files
    are gated by its own checks: one recipe blocked does not stop the others. ``version`` names the
    builds (``v<version>``); ``out`` receives a copy of each build written."""
    if out and Path(out).exists() and any(Path(out).iterdir()):
        print(
            f"safetygraph: --out {out}: the folder exists and is not empty; give a new one",
            file=sys.stderr,
        )
        return 2
    if version:
        os.environ["SAFETYGRAPH_EXPORT_VERSION"] = version
    _prepare_env(profile)
    from dagster import DagsterInstance

    import definitions

    # a version is a setting of the build: definitions bound before it was set are rebuilt
    defs = definitions.build_defs() if version else definitions.defs
    settings = definitions.default_settings()
    if version:  # a released version is never overwritten: refuse before building anything
        from safetygraph.core.builds import versioned_build_id

        for recipe in recipes:
            versioned_build_id(settings.storage(), RECIPE_FILES[recipe][1], version, None)
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
        + (f", recipes: {', '.join(recipes)}" if tuple(recipes) != RECIPES else "")
    )
    logs = {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "ERROR"}}}}
    merges = {"refusal_merge", "preference_split", "steering_files"}
    written: set[str] = set()  # assets materialized by this invocation

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
        written.update(mats)
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
                error = ev.event_specific_data.error
                while (
                    getattr(error, "cause", None) is not None
                ):  # the user's error, not Dagster's wrapper
                    error = error.cause
                cause = _cause(error.message)
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
    merged = sorted({"refusal", "circuit_breaker"} & set(recipes))
    if merged:
        for name in sources:
            ok &= run(definitions.SOURCE_JOB, name, name)
        if only_sources:
            print(f"\n{'done' if ok else 'FAILED'}: per-source chains only (--only-sources)")
            return 0 if ok else 1
        job = (
            definitions.DATASET_JOB
            if len(merged) == 2
            else definitions.REFUSAL_JOB
            if "refusal" in merged
            else definitions.CIRCUIT_BREAKER_JOB
        )
        ok &= run(job, "datasets" if len(merged) == 2 else merged[0])
    preference_sources = list(settings.active().preference.get("sources") or ())
    if "preference" in recipes:
        for name in preference_sources:
            ok &= run(definitions.PREFERENCE_SOURCE_JOB, f"preference:{name}", name)
        if preference_sources:
            ok &= run(definitions.PREFERENCE_JOB, "preference")
    steering = settings.active().steering
    if "steering" in recipes and steering.get("sources"):
        for name in steering["sources"]:
            ok &= run(definitions.INGEST_JOB, f"steering:{name}", name)
        ok &= run(definitions.STEERING_DECONT_JOB, "steering:decontamination")
        for trait in steering.get("traits") or settings.traits().names:
            ok &= run(definitions.STEERING_TRAIT_JOB, f"steering:{trait}", trait)
        ok &= run(definitions.STEERING_JOB, "steering")
    attempted = {
        "refusal": True,
        "circuit_breaker": True,
        "preference": bool(preference_sources),
        "steering": bool(steering.get("sources")),
    }
    storage = settings.storage()
    for recipe in recipes:
        asset, root, title = RECIPE_FILES[recipe]
        if asset in written:  # only what this invocation wrote: a blocked recipe shows nothing
            build_id = _print_build(storage, root, title)
            if out and build_id:
                dest = Path(out) / root / build_id if len(recipes) > 1 else Path(out)
                copy_build(storage, root, build_id, dest)
                print(f"copied to {dest}")
        elif attempted[recipe]:
            print(f"\n{title}: not written (its gates or inputs failed; see above)")
    if not ok and first_failure:
        print(f"\nfirst failure: {first_failure['at']}")
    print(
        f"\n{'done' if ok else 'FAILED'} in {time.perf_counter() - started:.1f}s; runs recorded in DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
    )
    return 0 if ok else 1


def _print_build(storage, root: str, title: str) -> str | None:
    """The newest complete build under ``root``: its folder, manifest and files; its id."""
    if not storage.exists(root, "LATEST"):
        return None
    build_id = storage.read_bytes(root, "LATEST").decode()
    manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
    fmt = f" ({manifest['format']})" if manifest.get("format") else ""
    print(f"\n{title}{fmt}: {storage.uri(root, build_id)}")
    print(f"manifest: {storage.uri(root, build_id, 'manifest.json')}")
    for f in manifest["files"]:
        rows = f"{f['rows']} rows" if f["rows"] is not None and f["path"].endswith(".jsonl") else ""
        print(f"  {f['path']:<36} {rows:>12}  sha256 {f['sha256'][:16]}…")
    return build_id


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
    b = sub.add_parser(
        "build",
        help="build one recipe (or several, comma-separated): its sources, its merge, its files",
    )
    b.add_argument(
        "recipe", help=f"one of {', '.join(RECIPES)}, or several comma-separated, or all"
    )
    b.add_argument("--profile", default=None)
    b.add_argument("-v", "--verbose", action="store_true")
    b.add_argument(
        "--sources", default="", help="comma-separated: only these sources of the profile"
    )
    b.add_argument("--allow-partial", action="store_true")
    b.add_argument("--out", default=None, help="copy the build (files and manifest) to this folder")
    b.add_argument(
        "--version",
        default=None,
        help="release version (e.g. 1.0.0): the build folder v<version>, files <name>-v<version>.<ext>, "
        "the version in the manifest; a released version is never overwritten",
    )
    q = sub.add_parser(
        "qa", help="QA on any JSONL file: format, duplicates, PII, labels, source mix"
    )
    q.add_argument("file")
    q.add_argument("--profile", default=None, help="the profile whose QA thresholds apply")
    q.add_argument("--json", default=None, help="also write the QA document to this JSON file")
    pf = sub.add_parser(
        "preflight",
        help="the stage-2 tokenizer preflight on any stage-2 JSONL file, with the profile's tokenizer",
    )
    pf.add_argument("file")
    pf.add_argument("--profile", default=None)
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
    pu = sub.add_parser(
        "push",
        help="upload a recipe's build (files, manifest, dataset card) to a Hugging Face dataset repo; token from HF_TOKEN",
    )
    pu.add_argument("recipe", help=f"one of {', '.join(RECIPES)}")
    pu.add_argument("--repo", required=True, help="dataset repo id, e.g. my-org/safety-refusal")
    pu.add_argument(
        "--build", default=None, help="build id under the recipe's folder (default: LATEST)"
    )
    pu.add_argument("--private", action="store_true", help="create the repo private")
    pu.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    pu.add_argument("--profile", default=None)
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


def push(
    profile: str | None,
    root: str,
    repo: str,
    build: str | None,
    private: bool,
    revision: str | None,
) -> int:
    """``safetygraph push``: 0 when the commit landed, 1 when the build or the Hub refused."""
    from huggingface_hub.errors import HfHubHTTPError

    from safetygraph.export.push import PushError, push_build

    _prepare_env(profile)
    import definitions

    try:
        done = push_build(
            definitions.default_settings().storage(), root, repo, build, private, revision
        )
    except (PushError, HfHubHTTPError) as exc:
        print(f"safetygraph push: {exc}", file=sys.stderr)
        return 1
    print(f"pushed build {done.build_id} ({done.files} files) to {done.repo_id}: {done.commit_url}")
    return 0


def _config_errors() -> tuple[type[BaseException], ...]:
    from safetygraph.core.builds import ExportVersionError
    from safetygraph.labeling.classifier import ClassifierError
    from safetygraph.labeling.constitution import ConstitutionError
    from safetygraph.recipes.circuit_breaker.preflight import PreflightError
    from safetygraph.recipes.steering.traits import TraitsError
    from safetygraph.sources.registry import RegistryError

    return (
        RegistryError,
        ConstitutionError,
        TraitsError,
        ClassifierError,
        PreflightError,
        ExportVersionError,
    )


CONFIG_ERRORS = _config_errors()


def _recipes(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return RECIPES
    chosen = tuple(r.strip().replace("-", "_") for r in text.split(",") if r.strip())
    unknown = [r for r in chosen if r not in RECIPES]
    if unknown or not chosen:
        raise SystemExit(
            f"safetygraph build: unknown recipe(s) {', '.join(unknown) or '(none)'}; use {', '.join(RECIPES)} or all"
        )
    return tuple(r for r in RECIPES if r in chosen)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "build":
        only = tuple(x.strip() for x in args.sources.split(",") if x.strip())
        return run_build(
            args.profile,
            args.verbose,
            only,
            args.allow_partial,
            recipes=_recipes(args.recipe),
            version=args.version,
            out=args.out,
        )
    if args.command == "qa":
        return qa(args.file, args.profile, args.json)
    if args.command == "preflight":
        return preflight_cli(args.file, args.profile)
    if args.command == "cleanup":
        return cleanup(args.profile, args.min_age, args.dry_run)
    if args.command == "push":
        recipe = args.recipe.replace("-", "_")
        if recipe not in RECIPE_FILES:
            raise SystemExit(
                f"safetygraph push: unknown recipe {args.recipe!r}; use {', '.join(RECIPES)}"
            )
        return push(
            args.profile,
            RECIPE_FILES[recipe][1],
            args.repo,
            args.build,
            args.private,
            args.revision,
        )
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
