"""Settings of one build laid over the active profile: what the command line's recipe flags set
(``--personality``, ``--limit-samples``, ``--dataset``, ``--seed``, ``--sources`` of a recipe,
``--judge``) without editing profiles.yaml.
Carried as JSON in SAFETYGRAPH_PROFILE_SET (the build settings' ``profile_set``, shown with the run's
resources in the UI)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from safetygraph.generation.core import GenerationConfig
from safetygraph.sources.recipe_settings import SettingsError, overlay
from safetygraph.sources.registry import Profile, Registry, RegistryError

MERGED = ("steering", "preference")  # dict settings: the given keys replace the profile's
REPLACED = ("seed", "sources")
# not profile settings: the default of the run's own judge choice (JudgeRunConfig), the export's size
RUN = ("judge", "target_samples")
CONFIGS = ("configs",)  # {role: {key: value}} laid over the profile's generation configs


def parse_profile_set(text: str) -> dict[str, Any]:
    """The JSON object of SAFETYGRAPH_PROFILE_SET (empty: nothing set)."""
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"SAFETYGRAPH_PROFILE_SET is not JSON ({exc}); unset it") from None
    if not isinstance(body, dict):
        raise RegistryError('SAFETYGRAPH_PROFILE_SET must be a JSON object, e.g. {"seed": 1}')
    unknown = sorted(set(body) - set(MERGED) - set(REPLACED) - set(RUN) - set(CONFIGS))
    if unknown:
        raise RegistryError(
            f"SAFETYGRAPH_PROFILE_SET sets {unknown}; it can set {', '.join(MERGED + REPLACED + RUN + CONFIGS)}"
        )
    n = body.get("target_samples")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n <= 0):
        raise RegistryError(f"--target-samples {n!r}: give a positive whole number")
    if "judge" in body:
        from safetygraph.labeling.registry import JUDGES

        if body["judge"] not in JUDGES:
            raise RegistryError(
                f"--judge {body['judge']!r} is not known; use one of {', '.join(JUDGES)}"
            )
    return body


def _overlay_configs(
    configs: dict[str, GenerationConfig], body: dict[str, dict]
) -> dict[str, GenerationConfig]:
    """``configs`` with each role's given keys laid over it (a new role starts from the
    defaults), checked as the profile's own configs are."""
    out = dict(configs)
    for role, cfg in body.items():
        if not isinstance(cfg, dict):
            raise RegistryError(f"SAFETYGRAPH_PROFILE_SET: configs.{role} must be an object")
        base = {}
        if role in out:
            base = {f.name: getattr(out[role], f.name) for f in dataclasses.fields(out[role])}
            base.pop("role")
        try:
            out[role] = GenerationConfig.from_dict(role, {**base, **cfg})
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"SAFETYGRAPH_PROFILE_SET: {exc}") from None
    return out


def apply_profile_set(profile: Profile, registry: Registry, body: dict[str, Any]) -> Profile:
    """``profile`` with ``body`` laid over it; every source it names must be in the registry."""
    if not body:
        return profile
    changes: dict[str, Any] = {}
    for key in MERGED:
        if key in body:
            if not isinstance(body[key], dict):
                raise RegistryError(f"SAFETYGRAPH_PROFILE_SET: {key} must be an object")
            try:
                changes[key] = overlay(getattr(profile, key), body[key], "--" + key, key)
            except SettingsError as exc:
                raise RegistryError(str(exc)) from None
    if "seed" in body:
        if not isinstance(body["seed"], int) or isinstance(body["seed"], bool):
            raise RegistryError(f"--seed {body['seed']!r}: give a whole number")
        changes["seed"] = body["seed"]
    if "sources" in body:
        changes["sources"] = tuple(body["sources"])
    if "configs" in body:
        changes["generation"] = _overlay_configs(profile.generation, dict(body["configs"]))
    named = [*changes.get("sources", ())]
    for key in MERGED:
        named += list(changes[key].sources) if key in body else []
    unknown = [n for n in named if n not in registry.names]
    if unknown:
        raise RegistryError(
            f"source(s) {', '.join(unknown)} are not in the registry; known: "
            f"{', '.join(registry.names)}"
        )
    return dataclasses.replace(profile, **changes)
