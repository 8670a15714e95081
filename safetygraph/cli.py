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
    safetygraph init DIR             # an editable copy of the configuration (SAFETYGRAPH_CONFIG_DIR)
    safetygraph --version

Runs are recorded in DAGSTER_HOME (default: .dagster_home in SAFETYGRAPH_HOME or the current folder), so ``dagster dev`` shows
them afterwards with their check results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetygraph.api import RECIPE_FILES, RECIPES, BuildError, build, parse_recipes, scoped_env
from safetygraph.commands import (
    _prepare_env,
    list_sources,
    preflight_cli,
    qa,
    validate,
    verify,
)
from safetygraph.core.version import __version__
from safetygraph.seed_flags import add_flags, profile_set


def run_build(
    profile: str | None = None,
    verbose: bool = False,
    only: Sequence[str] = (),
    allow_partial: bool = False,
    only_sources: bool = False,
    recipes: Sequence[str] = RECIPES,
    version: str | None = None,
    out: str | None = None,
    profile_set: dict | None = None,
    efficacy: bool = True,
) -> int:
    """The jobs of the profile for ``recipes`` (``safetygraph.api.build``, printing as it goes):
    0 when every job succeeded, 1 when one failed, 2 when ``out`` is a non-empty folder."""
    try:
        result = build(
            recipes,
            profile=profile,
            sources=only,
            out=out,
            version=version,
            allow_partial=allow_partial,
            only_sources=only_sources,
            profile_set=profile_set,
            efficacy=efficacy,
            echo=True,
            verbose=verbose,
        )
    except BuildError as exc:
        print(f"safetygraph: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


def cleanup(profile: str | None, min_age_s: float, dry_run: bool) -> int:
    _prepare_env(profile)
    from safetygraph.core.builds import clean
    from safetygraph.location import definitions

    storage = definitions.default_settings().storage()
    paths = clean(storage, min_age_s, dry_run)
    for path in paths:
        print(f"{'would remove' if dry_run else 'removed'} {path}")
    print(f"{len(paths)} incomplete build folder(s) or temporary file(s) under {storage.base_uri}")
    return 0


def _parser() -> argparse.ArgumentParser:
    """The argument parser of the ``safetygraph`` command, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="safetygraph",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"safetygraph {__version__}")
    parser.add_argument(
        "--config-dir",
        default=None,
        help="the configuration folder (`safetygraph init` writes one); default: "
        "$SAFETYGRAPH_CONFIG_DIR, else the packaged configuration",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_build_commands(sub)
    _add_file_commands(sub)
    _add_push_and_cleanup(sub)
    return parser


def _add_build_commands(sub: Any) -> None:
    """None: adds the init, demo and build subcommands to ``sub``."""
    ini = sub.add_parser(
        "init",
        help="write an editable copy of the profiles, registry, constitution and traits to DIR",
    )
    ini.add_argument("folder")
    ini.add_argument("--force", action="store_true", help="overwrite the files if DIR has them")
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
    _efficacy_flag(p)
    b = sub.add_parser(
        "build",
        help="build one recipe (or several, comma-separated): its sources, its merge, its files",
    )
    b.add_argument(
        "recipe", help=f"one of {', '.join(RECIPES)}, or several comma-separated, or all"
    )
    b.add_argument("--profile", default=None)
    b.add_argument("-v", "--verbose", action="store_true")
    b.add_argument("--allow-partial", action="store_true")
    b.add_argument(
        "--out", "--output", default=None, help="copy the build (files and manifest) to this folder"
    )
    b.add_argument(
        "--version",
        default=None,
        help="release version (e.g. 1.0.0): the build folder v<version>; the refusal export's files "
        "dataset_v<version>.jsonl, train_v<version>.*, qa_report_v<version>.json, "
        "manifest_v<version>.json; the version in the manifest; a released version is never overwritten",
    )
    _efficacy_flag(b)
    add_flags(b)


def _efficacy_flag(parser: Any) -> None:
    parser.add_argument(
        "--no-efficacy",
        action="store_true",
        help="do not run the efficacy job (a short training or steering run per recipe written)",
    )


def _add_file_commands(sub: Any) -> None:
    """None: adds the qa, preflight, verify, validate, sources and review-import subcommands."""
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


def _add_push_and_cleanup(sub: Any) -> None:
    """None: adds the push and cleanup subcommands to ``sub``."""
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config_dir:
        os.environ["SAFETYGRAPH_CONFIG_DIR"] = str(Path(args.config_dir).resolve())
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
    from safetygraph.location import definitions

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
    from safetygraph.core.paths import ConfigDirError
    from safetygraph.labeling.classifier import ClassifierError
    from safetygraph.labeling.constitution import ConstitutionError
    from safetygraph.project import InitError
    from safetygraph.recipes.circuit_breaker.preflight import PreflightError
    from safetygraph.recipes.steering.traits import TraitsError
    from safetygraph.sources.registry import RegistryError

    return (
        ConfigDirError,
        InitError,
        RegistryError,
        ConstitutionError,
        TraitsError,
        ClassifierError,
        PreflightError,
        ExportVersionError,
    )


CONFIG_ERRORS = _config_errors()


def _recipes(text: str) -> tuple[str, ...]:
    try:
        return parse_recipes(text)
    except BuildError as exc:
        raise SystemExit(f"safetygraph build: {exc}") from None


def _init(folder: str, force: bool) -> int:
    from safetygraph.project import init_project

    written = init_project(folder, force)
    for path in written:
        print(f"wrote {path}")
    print(
        f"\nexport SAFETYGRAPH_CONFIG_DIR={written[0].parent}  # or --config-dir; then edit the "
        "files and run `safetygraph validate`"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    only = tuple(x.strip() for x in args.sources.split(",") if x.strip())
    efficacy = not args.no_efficacy
    return run_build(
        args.profile, args.verbose, only, args.allow_partial, args.only_sources, efficacy=efficacy
    )


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "init":
        return _init(args.folder, args.force)
    if args.command == "build":
        recipes = _recipes(args.recipe)
        body, only, env = profile_set(args, recipes)
        with scoped_env(env):  # the flags' variables hold for this build only
            return run_build(
                args.profile,
                args.verbose,
                only,
                args.allow_partial,
                recipes=recipes,
                version=args.version,
                out=args.out,
                profile_set=body or None,
                efficacy=not args.no_efficacy,
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
        return _demo(args)
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
