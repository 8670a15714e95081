"""Parsing one build profile of ``config/profiles.yaml`` (used by ``registry.load_registry``).

A profile's sections are laid over the file's ``defaults`` profile and checked against the
registry's sources; the result is the keyword arguments of a ``registry.Profile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetygraph.generation.core import GenerationConfig
from safetygraph.sources.errors import RegistryError
from safetygraph.sources.eval_sets import Decontamination, EvalSetError
from safetygraph.sources.recipe_settings import (
    EfficacySettings,
    PreferenceSettings,
    SettingsError,
    SteeringSettings,
)
from safetygraph.sources.recipe_settings import parse as parse_settings
from safetygraph.sources.thresholds import ThresholdError, Thresholds, parse_thresholds


def _merged(defaults: dict[str, Any], body: dict[str, Any], key: str) -> dict[str, Any]:
    """The ``defaults`` profile's section ``key`` with the profile's own section laid over it."""
    return {**(defaults.get(key) or {}), **(body.get(key) or {})}


def _profile_sources(
    where: str, body: dict[str, Any], sources: dict[str, Any], registry_path: Path
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(the profile's sources, its overrides), or a RegistryError for a source not registered."""
    names = tuple(body.get("sources") or ())
    missing = [n for n in names if n not in sources]
    if missing:
        raise RegistryError(
            f"{where}: lists sources {missing} that the registry {registry_path} does not define"
        )
    if not names:
        raise RegistryError(f"{where}: lists no sources")
    overrides = body.get("overrides") or {}
    for n in overrides:
        if n not in sources:
            raise RegistryError(
                f"{where}: overrides source '{n}' that the registry does not define"
            )
    return names, overrides


def _thresholds(where: str, defaults: dict[str, Any], body: dict[str, Any]) -> Thresholds:
    """The profile's gate thresholds, or a RegistryError for a bad one."""
    try:
        return parse_thresholds(_merged(defaults, body, "thresholds"), where)
    except ThresholdError as exc:
        raise RegistryError(str(exc)) from None


def _generation(
    where: str, defaults: dict[str, Any], body: dict[str, Any]
) -> tuple[dict[str, GenerationConfig], dict[str, Any]]:
    """({role: generation config}, the GPU steps' Kubernetes placement): the profile's
    ``generation.configs`` over the defaults', merged by role, each checked when the profile loads
    (an unknown key or backend names the profile), and its ``generation.placement``."""
    base_gen, own_gen = defaults.get("generation") or {}, body.get("generation") or {}
    for section in (base_gen, own_gen):
        unknown = sorted(set(section) - {"configs", "placement"})
        if unknown:
            raise RegistryError(
                f"{where}: generation takes 'configs' and 'placement' (got {unknown})"
            )
    merged = {**(base_gen.get("configs") or {}), **(own_gen.get("configs") or {})}
    placement = dict(own_gen.get("placement") or base_gen.get("placement") or {})
    try:
        configs = {role: GenerationConfig.from_dict(role, dict(c)) for role, c in merged.items()}
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return configs, placement


def _recipe_settings(
    where: str,
    defaults: dict[str, Any],
    body: dict[str, Any],
    sources: dict[str, Any],
    registry_path: Path,
) -> tuple[PreferenceSettings, SteeringSettings]:
    """(preference, steering) settings, or a RegistryError for a bad setting or unknown source."""
    try:
        preference = parse_settings(
            PreferenceSettings, _merged(defaults, body, "preference"), where, "preference"
        )
        steering = parse_settings(
            SteeringSettings, _merged(defaults, body, "steering"), where, "steering"
        )
    except SettingsError as exc:
        raise RegistryError(str(exc)) from None
    for section, named in (("preference", preference.sources), ("steering", steering.sources)):
        unknown = [n for n in named if n not in sources]
        if unknown:
            raise RegistryError(
                f"{where}: {section}.sources lists {unknown} that the registry {registry_path} does not define"
            )
    return preference, steering


def _decontamination(
    where: str,
    defaults: dict[str, Any],
    body: dict[str, Any],
    sources: dict[str, Any],
    recipe_sources: dict[str, tuple[str, ...]],
) -> Decontamination:
    """The profile's decontamination rules, checked against each recipe's sources."""
    try:
        decont = Decontamination.parse(
            _merged(defaults, body, "decontamination"), where, set(sources)
        )
        for section, names in recipe_sources.items():
            decont.check_recipe_sources(where, section, names)
    except EvalSetError as exc:
        raise RegistryError(str(exc)) from None
    return decont


def profile_fields(
    where: str,
    body: dict[str, Any],
    defaults: dict[str, Any],
    sources: dict[str, Any],
    registry_path: Path,
) -> dict[str, Any]:
    """The keyword arguments of the profile's ``Profile`` (all but its name)."""
    names, overrides = _profile_sources(where, body, sources, registry_path)
    thresholds = _thresholds(where, defaults, body)
    generation, placement = _generation(where, defaults, body)
    preference, steering = _recipe_settings(where, defaults, body, sources, registry_path)
    recipe_sources = {
        "sources": names,
        "preference.sources": preference.sources,
        "steering.sources": steering.sources,
    }
    try:
        efficacy = parse_settings(
            EfficacySettings, _merged(defaults, body, "efficacy"), where, "efficacy"
        )
    except SettingsError as exc:
        raise RegistryError(str(exc)) from None
    return {
        "efficacy": efficacy,
        "decontamination": _decontamination(where, defaults, body, sources, recipe_sources),
        "preference": preference,
        "steering": steering,
        "sources": names,
        "thresholds": thresholds,
        "overrides": overrides,
        "generation": generation,
        "placement": placement,
        "seed": int(body.get("seed", defaults.get("seed", 0))),
        "description": str(body.get("description", "")),
    }
