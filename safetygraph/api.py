"""The Python API for people who script their builds (the rejection-detection system's
``DatasetPipeline``): ``safetygraph.build`` runs the same Dagster jobs as ``safetygraph build`` on the
local instance and returns what was written and which gates failed; ``safetygraph.load`` reads a
build's data file back as a ``datasets.Dataset`` after re-hashing it against the manifest.

    import safetygraph
    result = safetygraph.build("refusal", profile="demo", out="exports/refusal")
    assert result.ok, result.first_failure
    ds = safetygraph.load(result["refusal"].folder)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECIPES = ("refusal", "circuit_breaker", "preference", "steering")
# each recipe's files asset, the folder its builds are published under, and its title
RECIPE_FILES = {
    "refusal": ("export", "exports", "refusal export"),
    "circuit_breaker": ("stage2_files", "circuit_breaker", "circuit-breaker stage 2"),
    "preference": ("preference_files", "preference", "preference pairs (TRL)"),
    "steering": ("steering_files", "steering", "steering pairs (seed and CAA formats)"),
}
MERGES = ("refusal_merge", "preference_split", "steering_files")


class BuildError(ValueError):
    """An argument of :func:`build` that cannot be built (an unknown recipe or source, a non-empty
    ``out``)."""


@dataclass(frozen=True)
class CheckResult:
    """One asset check's evaluation in a build."""

    asset: str
    name: str
    passed: bool
    severity: str
    metadata: dict[str, Any]
    job: str


@dataclass(frozen=True)
class RecipeBuild:
    """A recipe's published build: its folder (a local path or a URI), manifest and files."""

    recipe: str
    build_id: str
    folder: str
    manifest: dict[str, Any]
    copied_to: str | None = None

    @property
    def files(self) -> list[str]:
        return [f"{self.folder}/{entry['path']}" for entry in self.manifest["files"]]


@dataclass(frozen=True)
class BuildResult:
    """What a build did: the recipes written, every check's result, the first failure."""

    ok: bool
    profile: str
    base_uri: str
    seconds: float
    builds: dict[str, RecipeBuild] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    not_written: tuple[str, ...] = ()
    first_failure: str | None = None
    # per recipe written: its efficacy figures, or {"skipped": the reason}
    efficacy: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, recipe: str) -> RecipeBuild:
        if recipe not in self.builds:
            raise KeyError(
                f"{recipe}: not written by this build ({self.first_failure or 'not requested'})"
            )
        return self.builds[recipe]

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]


def parse_recipes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``all``, one recipe or several (comma-separated or a list), in pipeline order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = tuple(r.strip().replace("-", "_") for r in items if r.strip())
    if chosen == ("all",):
        return RECIPES
    unknown = [r for r in chosen if r not in RECIPES]
    if unknown or not chosen:
        raise BuildError(
            f"unknown recipe(s) {', '.join(unknown) or '(none)'}; use {', '.join(RECIPES)} or all"
        )
    return tuple(r for r in RECIPES if r in chosen)


def build(
    recipe: str | Sequence[str] = "all",
    *,
    profile: str | None = None,
    sources: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    version: str | None = None,
    allow_partial: bool = False,
    only_sources: bool = False,
    profile_set: dict[str, Any] | None = None,
    echo: bool = False,
    verbose: bool = False,
    efficacy: bool = True,
) -> BuildResult:
    """Run ``recipe``'s jobs (its sources' chains, its merge, its files) for ``profile`` on the
    Dagster instance in DAGSTER_HOME (default: ``.dagster_home`` in SAFETYGRAPH_HOME or the current
    folder); configuration from SAFETYGRAPH_CONFIG_DIR or the packaged defaults. ``out`` receives a
    copy of each build; ``profile_set`` lays settings over the profile for this build only (``seed``,
    ``sources``, ``steering`` and ``preference`` keys: ``{"steering": {"traits": ["extroversion"],
    "limit": 100}}``); ``echo`` prints progress as the command line does; ``efficacy`` runs the
    efficacy job on the recipes written (``safetygraph.efficacy``; skipped, with the reason, where
    the extra or the profile's model is missing)."""
    from safetygraph.commands import _prepare_env

    recipes = parse_recipes(recipe)
    if out and Path(out).exists() and any(Path(out).iterdir()):
        raise BuildError(f"--out {out}: the folder exists and is not empty; give a new one")
    scoped = {
        "SAFETYGRAPH_PROFILE": profile,
        "SAFETYGRAPH_EXPORT_VERSION": version,
        "SAFETYGRAPH_PROFILE_SET": None if profile_set is None else json.dumps(profile_set),
    }
    with scoped_env(scoped):  # this build's settings do not leak into the next one
        _prepare_env(None)
        runner = _Build(recipes, tuple(sources), allow_partial, echo, verbose)
        runner.with_efficacy = efficacy
        return runner.run(version, str(out) if out else None, only_sources)


@contextmanager
def scoped_env(values: dict[str, str | None]) -> Iterator[None]:
    """The given variables set (a ``None`` leaves one as it is) and restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Build:
    """One invocation: the jobs in order, their check results, what they wrote."""

    def __init__(self, recipes, only, allow_partial, echo, verbose) -> None:
        from dagster import DagsterInstance

        from safetygraph.location import definitions

        self.recipes, self.allow_partial, self.verbose = recipes, allow_partial, verbose
        self.say: Callable[[str], None] = (lambda s: print(s, flush=True)) if echo else _quiet
        self.defs_module = definitions
        self.defs = definitions.build_defs()  # the environment as it is now (profile, version)
        self.settings = definitions.default_settings()
        self.instance = DagsterInstance.get()
        self.sources = self._sources(only)
        self.checks: list[CheckResult] = []
        self.written: set[str] = set()
        self.first_failure: str | None = None
        self.with_efficacy = True
        self.efficacy: dict[str, dict[str, Any]] = {}
        self._last = None

    def _sources(self, only: Sequence[str]) -> tuple[str, ...]:
        sources = self.settings.active().sources
        unknown = [n for n in only if n not in sources]
        if unknown:
            from safetygraph.sources.registry import RegistryError

            raise RegistryError(
                f"--sources {','.join(unknown)}: not in profile '{self.settings.profile}'; its "
                f"sources: {', '.join(sources)}"
            )
        return tuple(n for n in sources if n in only) if only else tuple(sources)

    def run(self, version: str | None, out: str | None, only_sources: bool) -> BuildResult:
        started = time.perf_counter()
        if "steering" in self.recipes:
            self.settings.steering_traits()  # an unknown trait: one error before any job runs
        if version:  # a released version is never overwritten: refuse before building anything
            from safetygraph.core.builds import versioned_build_id

            for recipe in self.recipes:
                versioned_build_id(self.settings.storage(), RECIPE_FILES[recipe][1], version, None)
        self.say(
            f"safetygraph: profile '{self.settings.profile}', {len(self.sources)} sources, data "
            f"under {self.settings.base_uri}"
            + (f", recipes: {', '.join(self.recipes)}" if self.recipes != RECIPES else "")
        )
        ok, attempted = self._jobs(only_sources)
        if self.with_efficacy and not only_sources:
            ok &= self._efficacy()
        builds, not_written = {}, []
        if not only_sources:
            builds, not_written = self._published(attempted, out)
        if not ok and self.first_failure:
            self.say(f"\nfirst failure: {self.first_failure}")
        seconds = time.perf_counter() - started
        self.say(
            f"\n{'done' if ok else 'FAILED'}"
            + (": per-source chains only (--only-sources)" if only_sources else "")
            + f" in {seconds:.1f}s; runs recorded in DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
        )
        return BuildResult(
            ok=ok,
            profile=self.settings.profile,
            base_uri=self.settings.base_uri,
            seconds=seconds,
            builds=builds,
            checks=self.checks,
            not_written=tuple(not_written),
            first_failure=self.first_failure,
            efficacy=self.efficacy,
        )

    def _jobs(self, only_sources: bool) -> tuple[bool, dict[str, bool]]:
        """Every job of the recipes, in order; (all succeeded, which recipes were attempted)."""
        d, active = self.defs_module, self.settings.active()
        ok = True
        merged = sorted({"refusal", "circuit_breaker"} & set(self.recipes))
        if merged or only_sources:
            for name in self.sources:
                ok &= self._job(d.SOURCE_JOB, name, name)
        if only_sources:
            return ok, {}
        if merged:
            job = {2: d.DATASET_JOB}.get(len(merged)) or (
                d.REFUSAL_JOB if "refusal" in merged else d.CIRCUIT_BREAKER_JOB
            )
            ok &= self._job(job, "datasets" if len(merged) == 2 else merged[0])
        preference_sources = list(active.preference.sources)
        if "preference" in self.recipes and preference_sources:
            for name in preference_sources:
                ok &= self._job(d.PREFERENCE_SOURCE_JOB, f"preference:{name}", name)
            ok &= self._job(d.PREFERENCE_JOB, "preference")
        steering = active.steering
        if "steering" in self.recipes and steering.sources:
            for name in steering.sources:
                ok &= self._job(d.INGEST_JOB, f"steering:{name}", name)
            ok &= self._job(d.STEERING_DECONT_JOB, "steering:decontamination")
            for trait in self.settings.steering_traits():
                ok &= self._job(d.STEERING_TRAIT_JOB, f"steering:{trait}", trait)
            ok &= self._job(d.STEERING_JOB, "steering")
        attempted = {
            "refusal": True,
            "circuit_breaker": True,
            "preference": bool(preference_sources),
            "steering": bool(steering.sources),
        }
        return ok, attempted

    def _efficacy(self) -> bool:
        """The efficacy job on the recipes this invocation wrote; each recipe's figures (or why it
        was skipped) printed and kept in ``self.efficacy``."""
        from dagster import AssetKey

        written = [r for r in self.recipes if RECIPE_FILES[r][0] in self.written]
        recipes = {AssetKey(f"{r}_efficacy"): r for r in written}  # keys.EFFICACY
        if not recipes:
            return True
        ok = self._job(self.defs_module.EFFICACY_JOB, "efficacy", selection=list(recipes))
        result = self._last
        for ev in result.get_asset_materialization_events():
            recipe = recipes[ev.asset_key]
            meta = ev.event_specific_data.materialization.metadata
            figures = {k: v.value for k, v in meta.items() if type(v.value) is float}
            self.efficacy[recipe] = figures
            self.say(
                f"  {recipe} efficacy: {meta['headline'].value}; {meta['model'].value}, "
                f"{meta['steps'].value} steps, {meta['seconds'].value:.0f}s"
            )
        for ev in result.get_asset_observation_events():
            recipe = recipes.get(ev.asset_key)
            reason = ev.event_specific_data.asset_observation.metadata.get("skipped")
            if recipe and reason is not None:
                self.efficacy[recipe] = {"skipped": reason.value}
                self.say(f"  {recipe} efficacy: skipped ({reason.value})")
        return ok

    def _job(
        self, job_name: str, label: str, partition: str | None = None, selection: list | None = None
    ) -> bool:
        t0 = time.perf_counter()
        job = self.defs.resolve_job_def(job_name)
        run_config: dict[str, Any] = {
            "loggers": {"console": {"config": {"log_level": "INFO" if self.verbose else "ERROR"}}}
        }
        ops = {n: {"config": {"allow_partial": True}} for n in MERGES if job.has_node_named(n)}
        if self.allow_partial and ops:
            run_config["ops"] = ops
        self.say(f"  [{label}] running...")
        result = job.execute_in_process(
            partition_key=partition,
            instance=self.instance,
            raise_on_error=False,
            run_config=run_config,
            asset_selection=selection,
        )
        self._last = result
        checks = [_check_result(ev, label) for ev in result.get_asset_check_evaluations()]
        self.checks += checks
        mats = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        self.written.update(mats)
        failed = sum(not c.passed for c in checks)
        what = f" ({', '.join(mats)})" if partition is None else ""
        self.say(
            f"  [{label}] {'ok' if result.success else 'FAILED'}: {len(mats)} assets materialized"
            f"{what}, {len(checks) - failed}/{len(checks)} checks passed "
            f"({time.perf_counter() - t0:.1f}s)"
        )
        if self.verbose or not result.success:
            self._report(result, checks, label)
        return result.success

    def _report(self, result, checks: list[CheckResult], label: str) -> None:
        """The failed checks with their figures (every check when verbose) and each failed step's
        cause; the first failure of the build is kept for the summary."""
        for c in checks:
            if self.verbose or not c.passed:
                self.say(f"    {_check_line(c)}")
        for ev in result.get_step_failure_events():
            error = ev.event_specific_data.error
            while getattr(error, "cause", None) is not None:  # the user's error, not Dagster's
                error = error.cause
            cause = _cause(error.message)
            if cause.startswith("DagsterAssetCheckFailedError"):
                continue  # the failed check is printed above, with its figures
            self.say(f"    step {ev.step_key} failed: {cause}")
            self.first_failure = self.first_failure or f"[{label}] step {ev.step_key}: {cause}"
        if not result.success and self.first_failure is None:
            failed = [_check_line(c) for c in checks if not c.passed]
            self.first_failure = f"[{label}] {failed[0] if failed else 'failed'}"

    def _published(
        self, attempted: dict[str, bool], out: str | None
    ) -> tuple[dict[str, RecipeBuild], list[str]]:
        from safetygraph.commands import copy_build

        storage = self.settings.storage()
        builds, not_written = {}, []
        for recipe in self.recipes:
            asset, root, title = RECIPE_FILES[recipe]
            if asset not in self.written:  # only what this invocation wrote
                if attempted.get(recipe):
                    not_written.append(recipe)
                    self.say(f"\n{title}: not written (its gates or inputs failed; see above)")
                continue
            built = self._latest(storage, recipe, root, title)
            if built and out:
                dest = Path(out) / root / built.build_id if len(self.recipes) > 1 else Path(out)
                copy_build(storage, root, built.build_id, dest)
                self.say(f"copied to {dest}")
                built = RecipeBuild(recipe, built.build_id, built.folder, built.manifest, str(dest))
            if built:
                builds[recipe] = built
        return builds, not_written

    def _latest(self, storage, recipe: str, root: str, title: str) -> RecipeBuild | None:
        """The newest complete build under ``root``, printed with its manifest and files."""
        if not storage.exists(root, "LATEST"):
            return None
        build_id = storage.read_bytes(root, "LATEST").decode()
        manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
        fmt = f" ({manifest['format']})" if manifest.get("format") else ""
        self.say(f"\n{title}{fmt}: {storage.uri(root, build_id)}")
        self.say(f"manifest: {storage.uri(root, build_id, 'manifest.json')}")
        for f in manifest["files"]:
            jsonl = f["rows"] is not None and f["path"].endswith(".jsonl")
            rows = f"{f['rows']} rows" if jsonl else ""
            self.say(f"  {f['path']:<36} {rows:>12}  sha256 {f['sha256'][:16]}…")
        return RecipeBuild(recipe, build_id, storage.uri(root, build_id), manifest)


def _quiet(_line: str) -> None:
    return None


def _check_result(ev, job: str) -> CheckResult:
    key = ev.asset_check_key
    return CheckResult(
        asset=key.asset_key.to_user_string(),
        name=key.name,
        passed=ev.passed,
        severity=ev.severity.value,
        metadata={k: getattr(v, "value", v) for k, v in ev.metadata.items()},
        job=job,
    )


def _check_line(c: CheckResult, limit: int = 300) -> str:
    """A check as one short line (what failed, by how much)."""
    status = "pass" if c.passed else f"FAIL ({c.severity})"
    line = f"check {c.asset}:{c.name} {status}"
    if c.passed:
        return line
    parts = []
    for k, value in c.metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{k}={' '.join(text.split())[:120]}")
    figures = "; ".join(parts)
    figures = figures if len(figures) <= limit else figures[: limit - 1] + "…"
    return f"{line}: {figures}"


def _cause(message: str) -> str:
    """The first line of a step's error without a module-qualified exception class prefix."""
    import re

    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ", "", first)


def load(path: str | os.PathLike, file: str | None = None, verify: bool = True) -> Any:
    """A build's data file as a ``datasets.Dataset``. ``path``: a JSONL or Parquet file, a build
    folder (with ``manifest.json``) or a recipe's folder (its ``LATEST`` build). In a build folder
    ``file`` names the file (default: the first JSONL data file of the manifest); with ``verify``
    the build is re-hashed against its manifest first and a mismatch raises."""
    import datasets

    target = _data_file(Path(path), file, verify)
    kind = "parquet" if target.suffix == ".parquet" else "json"
    return datasets.load_dataset(kind, data_files=str(target), split="train")


def _data_file(path: Path, file: str | None, verify: bool) -> Path:
    if path.is_file():
        return path
    if (path / "LATEST").is_file() and not (path / "manifest.json").exists():
        path = path / (path / "LATEST").read_text().strip()
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{path}: no manifest.json (not a complete build) and not a file")
    if verify:
        from safetygraph.core.builds import verify_build
        from safetygraph.core.storage import Storage

        problems = verify_build(Storage(str(path.parent.parent)), path.parent.name, path.name)
        if problems:
            raise ValueError(f"{path}: does not match its manifest: {'; '.join(problems[:3])}")
    names = [e["path"] for e in json.loads(manifest_path.read_text())["files"]]
    if file is None:
        data = [n for n in names if n.endswith(".jsonl") and "/" not in n]
        if not data:
            raise FileNotFoundError(f"{path}: the manifest lists no JSONL data file; pass file=")
        file = data[0]
    if file not in names:
        raise FileNotFoundError(f"{path}: {file} is not in the manifest; its files: {names}")
    return path / file
