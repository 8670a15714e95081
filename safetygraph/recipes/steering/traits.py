"""Traits from ``config/traits.yaml``: name, family, definition, marker words, and the prompts that
ask for a trait-positive and a neutral description of a character and for what it would say."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from safetygraph.core.paths import PACKAGED_CONFIG, config_file

DEFAULT_TRAITS = PACKAGED_CONFIG / "traits.yaml"
FAMILIES = ("big_five", "dark_triad")
PROMPTS = ("positive", "neutral", "answer")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TraitsError(ValueError):
    """A traits file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Trait:
    name: str
    family: str
    definition: str
    markers: tuple[str, ...]


@dataclass(frozen=True)
class TraitBook:
    traits: dict[str, Trait]
    prompts: dict[str, str]
    path: str

    @property
    def names(self) -> list[str]:
        return list(self.traits)

    def resolve(self, names: Iterable[str]) -> list[str]:
        """The book's names for ``names``, matched case-insensitively with spaces and hyphens as
        underscores (the seed's ``--personality "Extroversion, Machiavellianism"``); an unknown
        one is an error that lists the known traits."""
        canonical = {n.lower(): n for n in self.traits}
        resolved, unknown = [], []
        for name in names:
            key = re.sub(r"[\s-]+", "_", str(name).strip()).lower()
            if key in canonical:
                resolved.append(canonical[key])
            elif key:
                unknown.append(str(name).strip())
        if unknown:
            raise TraitsError(
                f"trait(s) {', '.join(repr(u) for u in unknown)} not in {self.path}; known: "
                f"{', '.join(self.traits)} (add an entry to that file to build a new one)"
            )
        return list(dict.fromkeys(resolved))

    def trait(self, name: str) -> Trait:
        if name not in self.traits:
            raise TraitsError(
                f"trait '{name}' is not in {self.path}; known: {', '.join(self.traits)}"
            )
        return self.traits[name]


def load_traits(path: str | Path | None = None) -> TraitBook:
    path = Path(path or config_file("traits.yaml"))
    if not path.exists():
        raise TraitsError(f"traits file {path} does not exist")
    body = yaml.safe_load(path.read_text()) or {}
    prompts = body.get("prompts") or {}
    missing = [p for p in PROMPTS if not prompts.get(p)]
    if missing:
        raise TraitsError(
            f"{path}: prompts {missing} are missing; give positive, neutral and answer"
        )
    for key in ("positive", "neutral", "answer"):
        for field in ("{scenario}", "{character}"):
            if field not in prompts[key]:
                raise TraitsError(f"{path}: prompt '{key}' must contain {field}")
    if "{description}" not in prompts["answer"]:
        raise TraitsError(f"{path}: prompt 'answer' must contain {{description}}")
    traits: dict[str, Trait] = {}
    for i, entry in enumerate(body.get("traits") or [], 1):
        where = f"{path}: trait {i}"
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _NAME.match(name):
            raise TraitsError(
                f"{where}: name {name!r} must be lower-case letters, digits, underscores"
            )
        if name in traits:
            raise TraitsError(f"{where}: trait '{name}' appears twice")
        if entry.get("family") not in FAMILIES:
            raise TraitsError(f"{where} ('{name}'): family must be one of {', '.join(FAMILIES)}")
        markers = tuple(str(m).lower() for m in entry.get("markers") or ())
        if not entry.get("definition") or not markers:
            raise TraitsError(f"{where} ('{name}'): give a definition and at least one marker")
        traits[name] = Trait(name, entry["family"], str(entry["definition"]), markers)
    if not traits:
        raise TraitsError(f"{path}: no traits; add entries under traits:")
    return TraitBook(traits=traits, prompts={k: str(prompts[k]) for k in PROMPTS}, path=str(path))
