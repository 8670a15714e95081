"""The source registry and build profiles.

The registry (``config/sources.yaml``) lists every dataset source: where it lives, how its columns
map onto the canonical record, which role tags it carries, its licence and sampling. A profile
(``config/profiles.yaml``) names the sources that take part in a build, per-source location
overrides (say, a local mirror of an HF dataset) and the gate thresholds.

Both files are plain data: a user adds a source by editing the registry alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safetygraph.core.paths import PACKAGED_CONFIG, config_file, resolve_registry_path
from safetygraph.generation.core import GenerationConfig
from safetygraph.sources.errors import RegistryError
from safetygraph.sources.eval_sets import Decontamination
from safetygraph.sources.lookup import parse_lookup, parse_stage2_files
from safetygraph.sources.profile_parse import profile_fields
from safetygraph.sources.recipe_settings import (
    EfficacySettings,
    PreferenceSettings,
    SteeringSettings,
)
from safetygraph.sources.thresholds import Thresholds

KINDS = ("hf", "url", "local")
FORMATS = ("jsonl", "json", "json.gz", "jsonl.gz", "csv", "parquet")
# Canonical fields a source column can be mapped onto.
MAPPABLE = (
    "prompt",
    "response",
    "system",
    "messages",
    "tools",
    "transcript",
    "context",
    "category",
    "source_id",
)
# A source must provide the conversation through one of these.
CONVERSATION_FIELDS = ("prompt", "messages", "transcript")
ROLE_TAGS = (
    "harmful",
    "benign",
    "borderline",
    "agentic",
    "preference",
    "attack",
    "refusal_eval",
    "general_chat",
    "domain_qa",
    "dialogue",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# Builders that make a conversation out of a structured record (instead of a column mapping).
BUILDERS = ("tau2_trace",)

DEFAULT_REGISTRY = PACKAGED_CONFIG / "sources.yaml"
DEFAULT_MAX_TEXT_CHARS = 200_000  # well under any model's context, well over any real turn
TEXT_FIELDS = ("prompt", "response", "system", "context", "transcript")
DEFAULT_PROFILES = PACKAGED_CONFIG / "profiles.yaml"


@dataclass(frozen=True)
class LabelSpec:
    """Row-level harm tags from a source column: values listed under harmful/benign/borderline."""

    column: str
    harmful: tuple[str, ...] = ()
    benign: tuple[str, ...] = ()
    borderline: tuple[str, ...] = ()

    def tag_for(self, value: str) -> str | None:
        for tag in ("harmful", "benign", "borderline"):
            if value in getattr(self, tag):
                return tag
        return None


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    location: dict[str, Any]
    format: str
    mapping: dict[str, str]
    roles: tuple[str, ...] = ()
    licence: str = "unknown"
    row_limit: int | None = None
    seed: int = 0
    label: LabelSpec | None = None
    # Unpivot: one canonical row per (source row, model), response taken from column per model.
    responses: dict[str, str] = field(default_factory=dict)
    # Per-model extra columns kept in meta, templated with {model}: {"gold_action": "{model}_action"}.
    response_meta: dict[str, str] = field(default_factory=dict)
    description: str = ""
    token_env: str | None = None  # env var holding an HF token for gated datasets
    # Attack sources: where a row says whether the attack succeeded (paths into the row, first
    # non-null wins; true = the agent was compromised). AgentDojo keeps "security" at the top level
    # or under "metadata" depending on the version.
    attack_outcome: tuple[str, ...] = ()
    # whether the source's answers may enter the circuit-breaker harmful set (Ds): "judged" (rows
    # the judge calls harmful do) or "never" (human-preferred answers such as hh-rlhf's chosen:
    # a row judged harmful is left out of Ds, with the reason)
    harmful_set: str = "judged"
    # the circuit-breaker plan's file names for the source's rows, {harmful: stem, retain: stem}
    # (else one file per sample kind: recipes/circuit_breaker/files.py)
    stage2_files: dict[str, str] = field(default_factory=dict)
    builder: str | None = None  # one of BUILDERS
    # text fields whose numbers may become text (otherwise a number where text belongs is quarantined)
    coerce: tuple[str, ...] = ()
    # a row with a longer turn (or tool schemas) is quarantined as too long
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    # a value looked up in a second file, by a column of the row (GPTFuzz keeps the question's index
    # beside each answer, the text in another file): {column, path, key, value, as}; the looked-up
    # value is a column ``as`` of the row that the mapping can name
    lookup: dict[str, str] = field(default_factory=dict)
    base_dir: Path = PACKAGED_CONFIG

    def lookup_path(self) -> str:
        """The lookup file's path (a relative one resolves against the registry file's folder)."""
        return resolve_registry_path(self.lookup["path"], self.base_dir)

    @property
    def has_responses(self) -> bool:
        return "response" in self.mapping or bool(self.responses) or "transcript" in self.mapping

    def resolved_path(self) -> str:
        """The local path (relative entries resolve against the registry file's folder)."""
        path = self.location["path"]
        if "://" in path or os.path.isabs(path):
            return path
        return resolve_registry_path(path, self.base_dir)

    def describe_location(self) -> str:
        if self.kind == "hf":
            loc = self.location
            return (
                f"hf:{loc['id']}"
                + (f"/{loc['config']}" if loc.get("config") else "")
                + f"[{loc.get('split', 'train')}]"
            )
        if self.kind == "url":
            return self.location["url"]
        return self.resolved_path()


@dataclass(frozen=True)
class Profile:
    name: str
    sources: tuple[str, ...]
    thresholds: Thresholds
    overrides: dict[str, dict[str, Any]]
    generation: dict[str, GenerationConfig]  # role -> config (profiles.yaml generation.configs)
    seed: int = 0
    description: str = ""
    # the GPU steps' Kubernetes placement (generation.placement: gpus, node_selector, ...)
    placement: dict[str, Any] = field(default_factory=dict)
    # the preference recipe: sources, mode, chosen/rejected configs, format (config/profiles.yaml)
    preference: PreferenceSettings = field(default_factory=PreferenceSettings)
    # the steering recipe: scenario sources, traits, generation config, limits (config/profiles.yaml)
    steering: SteeringSettings = field(default_factory=SteeringSettings)
    # the evaluation sets its training files must not contain, and the rules (eval_sets.py)
    decontamination: Decontamination = field(default_factory=Decontamination)
    # the efficacy runs: the model trained and steered on each recipe's files, bounds, floors
    efficacy: EfficacySettings = field(default_factory=EfficacySettings)


def _err(where: str, msg: str) -> RegistryError:
    return RegistryError(f"{where}: {msg}")


HARMFUL_SET_POLICIES = ("judged", "never")
SOURCE_KEYS = tuple(f.name for f in dataclasses.fields(SourceSpec) if f.name != "base_dir")
PROFILE_KEYS = (
    "description",
    "sources",
    "thresholds",
    "overrides",
    "generation",
    "preference",
    "steering",
    "decontamination",
    "efficacy",
    "seed",
)


def _unknown_keys(where: str, body: dict[str, Any], known: tuple[str, ...]) -> None:
    """A misspelt key is named as such, with the nearest known key, not reported as a missing one."""
    for key in body:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(known)}"
            raise _err(where, f"unknown key '{key}'; {hint}")


def load_yaml(path: Path) -> Any:
    """A YAML file, or a RegistryError naming the file, line and column of a syntax error."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError(
            f"{at}: YAML syntax error: {problem}; fix the indentation or quoting on that line"
        ) from None


def _kind_location_format(
    entry: dict[str, Any], where: str
) -> tuple[str, dict[str, Any], str | None]:
    """(kind, location, format) of a source entry, or a RegistryError naming what is wrong."""
    kind = entry.get("kind")
    if kind not in KINDS:
        raise _err(where, f"kind {kind!r} is not one of {', '.join(KINDS)}")
    location = entry.get("location") or {}
    need = {"hf": "id", "url": "url", "local": "path"}[kind]
    if need not in location:
        raise _err(where, f"kind '{kind}' needs location.{need}")
    fmt = entry.get("format")
    if kind != "hf" and fmt not in FORMATS:
        raise _err(
            where,
            f"format {fmt!r} is not one of {', '.join(FORMATS)}; set format: to the file's format",
        )
    return kind, location, fmt


def _mapping_and_roles(entry: dict[str, Any], where: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """(mapping, roles) of a source entry, or a RegistryError for an unknown target or role."""
    mapping = dict(entry.get("mapping") or {})
    unknown = sorted(set(mapping) - set(MAPPABLE))
    if unknown:
        raise _err(
            where, f"mapping targets {unknown} are not canonical fields ({', '.join(MAPPABLE)})"
        )
    if not any(f in mapping for f in CONVERSATION_FIELDS):
        raise _err(where, "mapping must map one of prompt, messages or transcript onto a column")
    roles = tuple(entry.get("roles") or ())
    bad_roles = sorted(set(roles) - set(ROLE_TAGS))
    if bad_roles:
        raise _err(where, f"roles {bad_roles} are unknown; use any of {', '.join(ROLE_TAGS)}")
    return mapping, roles


def _label_spec(entry: dict[str, Any], where: str) -> LabelSpec | None:
    """The entry's label column and values (None without one), or a RegistryError."""
    if not entry.get("label"):
        return None
    spec = entry["label"]
    if "column" not in spec:
        raise _err(where, "label needs column: and the values under harmful:/benign:/borderline:")
    return LabelSpec(
        column=spec["column"],
        harmful=tuple(str(v) for v in spec.get("harmful", ())),
        benign=tuple(str(v) for v in spec.get("benign", ())),
        borderline=tuple(str(v) for v in spec.get("borderline", ())),
    )


def _builder_outcome_policy(
    entry: dict[str, Any], roles: tuple[str, ...], where: str
) -> tuple[str | None, Any, str]:
    """(builder, attack_outcome as written, harmful_set) of a source entry, or a RegistryError."""
    builder = entry.get("builder")
    if builder is not None and builder not in BUILDERS:
        raise _err(where, f"builder {builder!r} is unknown; use one of {', '.join(BUILDERS)}")
    outcome = entry.get("attack_outcome") or ()
    if isinstance(outcome, str):
        outcome = (outcome,)
    if outcome and "attack" not in roles:
        raise _err(where, "attack_outcome is only read for sources with the role 'attack'")
    harmful_set = str(entry.get("harmful_set") or "judged")
    if harmful_set not in HARMFUL_SET_POLICIES:
        raise _err(
            where,
            f"harmful_set {harmful_set!r} is unknown; use {' or '.join(HARMFUL_SET_POLICIES)}",
        )
    return builder, outcome, harmful_set


def _limits(entry: dict[str, Any], where: str) -> tuple[int | None, tuple[str, ...], int]:
    """(row_limit, coerce, max_text_chars) of a source entry, or a RegistryError."""
    row_limit = entry.get("row_limit")
    if row_limit is not None and (not isinstance(row_limit, int) or row_limit <= 0):
        raise _err(where, f"row_limit {row_limit!r} must be a positive integer or null")
    coerce = tuple(entry.get("coerce") or ())
    if set(coerce) - set(TEXT_FIELDS):
        raise _err(
            where,
            f"coerce {sorted(set(coerce) - set(TEXT_FIELDS))} must be text fields ({', '.join(TEXT_FIELDS)})",
        )
    max_chars = entry.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)
    if not isinstance(max_chars, int) or max_chars <= 0:
        raise _err(where, f"max_text_chars {max_chars!r} must be a positive integer")
    return row_limit, coerce, max_chars


def _parse_source(entry: dict[str, Any], base_dir: Path, where: str) -> SourceSpec:
    if not isinstance(entry, dict):
        raise _err(
            where, "each source must be a mapping with name, kind, location, format, mapping"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err(where, f"name {name!r} must be lower-case letters, digits and underscores")
    where = f"{where} (source '{name}')"
    _unknown_keys(where, entry, SOURCE_KEYS)
    kind, location, fmt = _kind_location_format(entry, where)
    mapping, roles = _mapping_and_roles(entry, where)
    label = _label_spec(entry, where)
    builder, outcome, harmful_set = _builder_outcome_policy(entry, roles, where)
    stage2_files = parse_stage2_files(entry.get("stage2_files"), where)
    row_limit, coerce, max_chars = _limits(entry, where)
    lookup = parse_lookup(entry.get("lookup"), where)
    return SourceSpec(
        name=name,
        kind=kind,
        location=dict(location),
        format=fmt or "hf",
        mapping=mapping,
        roles=roles,
        licence=str(entry.get("licence", "unknown")),
        row_limit=row_limit,
        seed=int(entry.get("seed", 0)),
        label=label,
        responses=dict(entry.get("responses") or {}),
        response_meta=dict(entry.get("response_meta") or {}),
        description=str(entry.get("description", "")),
        token_env=entry.get("token_env"),
        attack_outcome=tuple(str(x) for x in outcome),
        harmful_set=harmful_set,
        stage2_files=stage2_files,
        builder=builder,
        coerce=coerce,
        max_text_chars=max_chars,
        lookup=lookup,
        base_dir=base_dir,
    )


@dataclass(frozen=True)
class Registry:
    sources: dict[str, SourceSpec]
    profiles: dict[str, Profile]
    path: str = ""

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def source(self, name: str, profile: str | None = None) -> SourceSpec:
        """The spec of a source, with the profile's location override applied."""
        if name not in self.sources:
            raise RegistryError(
                f"source '{name}' is not in the registry {self.path}; add an entry to it"
            )
        spec = self.sources[name]
        override = self.profile(profile).overrides.get(name) if profile else None
        if not override:
            return spec
        merged = {**_spec_to_entry(spec), **override}
        if "location" in override:
            merged["location"] = override["location"]
        return _parse_source(merged, spec.base_dir, f"profile '{profile}' override")

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise RegistryError(
                f"profile '{name}' is not defined; known profiles: {', '.join(sorted(self.profiles))}"
            )
        return self.profiles[name]


def _spec_to_entry(spec: SourceSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "location": spec.location,
        "format": None if spec.kind == "hf" else spec.format,
        "mapping": spec.mapping,
        "roles": list(spec.roles),
        "licence": spec.licence,
        "row_limit": spec.row_limit,
        "seed": spec.seed,
        "responses": spec.responses,
        "response_meta": spec.response_meta,
        "description": spec.description,
        "token_env": spec.token_env,
        "attack_outcome": list(spec.attack_outcome),
        "harmful_set": spec.harmful_set,
        "stage2_files": spec.stage2_files,
        "builder": spec.builder,
        "coerce": list(spec.coerce),
        "max_text_chars": spec.max_text_chars,
        "lookup": spec.lookup,
    }
    if spec.label:
        entry["label"] = {
            "column": spec.label.column,
            "harmful": list(spec.label.harmful),
            "benign": list(spec.label.benign),
            "borderline": list(spec.label.borderline),
        }
    return entry


def _config_paths(
    registry_path: str | Path | None, profiles_path: str | Path | None
) -> tuple[Path, Path]:
    """(registry file, profiles file): the arguments, else the environment, else the config."""
    registry_path = Path(
        registry_path or os.environ.get("SAFETYGRAPH_REGISTRY") or config_file("sources.yaml")
    )
    profiles_path = Path(
        profiles_path or os.environ.get("SAFETYGRAPH_PROFILES") or config_file("profiles.yaml")
    )
    for p, what in ((registry_path, "registry"), (profiles_path, "profiles")):
        if not p.exists():
            raise RegistryError(
                f"{what} file {p} does not exist; set SAFETYGRAPH_{what.upper()} or create it"
            )
    return registry_path, profiles_path


def _load_sources(registry_path: Path) -> dict[str, SourceSpec]:
    """The registry file's sources by name, or a RegistryError for a bad or repeated entry."""
    raw = load_yaml(registry_path) or {}
    entries = raw.get("sources")
    if not isinstance(entries, list) or not entries:
        raise _err(str(registry_path), "needs a top-level 'sources:' list with at least one entry")
    sources: dict[str, SourceSpec] = {}
    for i, entry in enumerate(entries):
        spec = _parse_source(
            entry, registry_path.parent.resolve(), f"{registry_path} entry {i + 1}"
        )
        if spec.name in sources:
            raise _err(str(registry_path), f"source name '{spec.name}' appears twice")
        sources[spec.name] = spec
    return sources


def load_registry(
    registry_path: str | Path | None = None, profiles_path: str | Path | None = None
) -> Registry:
    registry_path, profiles_path = _config_paths(registry_path, profiles_path)
    sources = _load_sources(registry_path)

    raw_profiles = (load_yaml(profiles_path) or {}).get("profiles") or {}
    defaults = (
        raw_profiles.pop("defaults", {}) if isinstance(raw_profiles.get("defaults"), dict) else {}
    )
    profiles: dict[str, Profile] = {}
    for pname, body in raw_profiles.items():
        where = f"{profiles_path} profile '{pname}'"
        _unknown_keys(where, body, PROFILE_KEYS)
        fields = profile_fields(where, body, defaults, sources, registry_path)
        profiles[pname] = Profile(name=pname, **fields)
    registry = Registry(sources=sources, profiles=profiles, path=str(registry_path))
    for (
        pname
    ) in profiles:  # validate overrides eagerly: a broken override fails at load, not mid-run
        for n in profiles[pname].overrides:
            registry.source(n, pname)
    return registry
