"""Build settings: which profile, registry and constitution a build uses, and where data lives."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dagster import AssetKey, ConfigurableResource
from pydantic import Field
from safetygraph.location.resources.io_manager import stored_table

from safetygraph.audit.neardup import PairCache
from safetygraph.core.storage import Storage
from safetygraph.core.tables import DEFAULT_BATCH_ROWS, StoredTable
from safetygraph.generation import GenerationConfig
from safetygraph.labeling.constitution import DEFAULT_CONSTITUTION, Constitution, load_constitution
from safetygraph.recipes.circuit_breaker.preflight_run import PreflightRun, PreflightSetup
from safetygraph.recipes.steering.traits import DEFAULT_TRAITS, TraitBook, load_traits
from safetygraph.sources.profile_set import apply_profile_set, parse_profile_set
from safetygraph.sources.registry import (
    DEFAULT_PROFILES,
    DEFAULT_REGISTRY,
    Profile,
    Registry,
    SourceSpec,
    load_registry,
)
from safetygraph.sources.thresholds import Thresholds, required

DEFAULT_BASE_URI = ".safetygraph/data"


@lru_cache(maxsize=8)
def _registry(registry_path: str, profiles_path: str) -> Registry:
    return load_registry(registry_path, profiles_path)


@lru_cache(maxsize=8)
def _traits(path: str) -> TraitBook:
    return load_traits(path)


@lru_cache(maxsize=8)
def _constitution(path: str) -> Constitution:
    return load_constitution(path)


class BuildConfig(ConfigurableResource):
    """The active profile and the files that define a build. Thresholds come from the profile."""

    profile: str = "demo"
    registry_path: str = str(DEFAULT_REGISTRY)
    profiles_path: str = str(DEFAULT_PROFILES)
    constitution_path: str = str(DEFAULT_CONSTITUTION)
    base_uri: str = DEFAULT_BASE_URI
    traits_path: str = str(DEFAULT_TRAITS)
    export_version: str = Field(
        default="",
        description="A release version (e.g. 1.0.0) for the recipes' builds: the folder v<version>, "
        "the export's files named dataset_v<version>.jsonl, ..., the version in the manifest; empty: a time-stamped build",
    )
    profile_set: str = Field(
        default="",
        description="Settings laid over the profile for this build (JSON: seed, sources, steering, "
        "preference), from SAFETYGRAPH_PROFILE_SET; the command line's recipe flags set it",
    )
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS,
        description="Rows per record batch in the streaming steps (ingest, generation, labels, "
        "audit, their checks): peak memory scales with it, not with the source",
    )

    def registry(self) -> Registry:
        return _registry(self.registry_path, self.profiles_path)

    def active(self) -> Profile:
        registry = self.registry()
        return apply_profile_set(
            registry.profile(self.profile), registry, parse_profile_set(self.profile_set)
        )

    def steering_traits(self) -> list[str]:
        """The traits this build steers: the profile's (case-insensitive), else every trait."""
        book = self.traits()
        return book.resolve(self.active().steering.traits) or book.names

    def source(self, name: str) -> SourceSpec:
        return self.registry().source(name, self.profile)

    def thresholds(self) -> Thresholds:
        """The active profile's thresholds, typed (``safetygraph/sources/thresholds.py``)."""
        return self.active().thresholds

    def required(self, name: str) -> Any:
        """A threshold the profile must set (the size minimums: no universal default); unset, one
        error naming the profile and its file."""
        return required(self.thresholds(), name, f"profile '{self.profile}' ({self.profiles_path})")

    def constitution(self) -> Constitution:
        return _constitution(self.constitution_path)

    def traits(self) -> TraitBook:
        return _traits(self.traits_path)

    def storage(self) -> Storage:
        return Storage(self.base_uri)

    def stored(self, key: AssetKey, partition: str | None = None) -> StoredTable | None:
        """An asset (partition) as the IO manager stored it, or None when never materialized."""
        return stored_table(self.storage(), key, partition, self.batch_rows)

    def stored_partitions(self, key: AssetKey, partitions) -> dict[str, StoredTable]:
        """{partition: stored table} of the named partitions of ``key``; each must exist."""
        out = {}
        for name in partitions:
            table = self.stored(key, name)
            if table is None:
                raise FileNotFoundError(
                    f"{key.to_user_string()}[{name}] is not stored under {self.base_uri}; "
                    "materialize it first"
                )
            out[name] = table
        return out

    def generation_configs(self, roles: list[str]) -> list[GenerationConfig]:
        """The active profile's generation configs of the given roles (target, direct, judge, ...)."""
        configs = self.active().generation
        missing = [r for r in roles if r not in configs]
        if missing:
            raise ValueError(
                f"profile '{self.profile}' has no generation config(s) {missing}; it has {sorted(configs)}"
            )
        return [configs[r] for r in roles]

    def harmful_set_never(self) -> tuple[str, ...]:
        """The active profile's sources whose answers never enter the harmful set (Ds)."""
        specs = [self.registry().source(s, self.profile) for s in self.active().sources]
        return tuple(s.name for s in specs if s.harmful_set == "never")

    def upstream_ids(self, sources) -> dict[str, str]:
        """{source: upstream dataset id} for the named sources the registry reads from the Hugging
        Face Hub by default (``medquad`` -> ``lavita/MedQuAD``), also where a profile reads a
        local copy instead."""
        out = {}
        for name in sources:
            spec = self.registry().source(name)
            if spec.kind == "hf" and spec.location.get("id"):
                out[name] = str(spec.location["id"])
        return out

    def target_samples(self) -> int | None:
        """``--target-samples``: the rows the refusal export holds (None: all of them)."""
        n = parse_profile_set(self.profile_set).get("target_samples")
        return int(n) if n is not None else None

    def judge(self) -> str:
        """The judge of this build when a run does not choose one: ``--judge`` (the profile set's
        ``judge``), else combined."""
        return str(parse_profile_set(self.profile_set).get("judge") or "combined")

    def stage2_file_names(self) -> dict[str, dict[str, str]]:
        """{source: {harmful|retain: file stem}} for the active profile's sources that name the
        circuit-breaker plan's files."""
        specs = (self.source(n) for n in self.active().sources)
        return {s.name: dict(s.stage2_files) for s in specs if s.stage2_files}

    def attack_outcome_paths(self) -> dict[str, tuple[str, ...]]:
        """{source: attack_outcome paths} for the active profile's sources that declare them."""
        specs = (self.source(n) for n in self.active().sources)
        return {s.name: s.attack_outcome for s in specs if s.attack_outcome}

    def preflight(self) -> PreflightRun:
        """The profile's tokenizer preflight (``PreflightSetup.from_thresholds``), shared by the
        stage-2 step and its gate through the build's cache."""
        return PreflightRun(PreflightSetup.from_thresholds(self.thresholds()), self.storage())

    def near_dup_cache(self) -> PairCache:
        """The build's near-duplicate pairs (``cache/neardup/``): a split, its leakage check and
        the merge's figure over the same prompts pair them once."""
        return PairCache(self.storage())

    def config_files(self) -> list[str]:
        return [self.registry_path, self.profiles_path, self.constitution_path, self.traits_path]
