"""Evaluation sets: the benchmarks a profile's training files must not contain.

A profile declares them under ``decontamination:`` (config/profiles.yaml): registry sources
(``eval_sets``, read through their registry entry and the profile's overrides, like any source)
and files of prompts (``eval_files``: name -> a JSONL, CSV or Parquet file with a ``prompt``
column, and optionally an ``id`` column). A source that is an evaluation set cannot feed a
recipe unless the profile names it under ``eval_only`` too: its rows then go to eval only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from safetygraph.audit.decont import Rules

KEYS = ("eval_sets", "eval_files", "eval_only", "ngram", "min_words", "jaccard", "enabled")
FILE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class EvalSetError(ValueError):
    pass


@dataclass(frozen=True)
class Decontamination:
    """A profile's ``decontamination:`` block, validated when the profile loads."""

    eval_sets: tuple[str, ...] = ()
    eval_files: dict[str, str] = field(default_factory=dict)
    eval_only: tuple[str, ...] = ()
    rules: Rules = Rules()
    enabled: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.eval_sets, *self.eval_files)

    @property
    def as_dict(self) -> dict[str, Any]:
        return {
            "eval_sets": list(self.names),
            "eval_only": list(self.eval_only),
            "ngram": self.rules.ngram,
            "min_words": self.rules.min_words,
            "jaccard": self.rules.jaccard,
            "enabled": self.enabled,
        }

    @classmethod
    def parse(cls, body: Any, where: str, known_sources: set[str]) -> Decontamination:
        """From a profile's block; a misspelt key, an unknown source or a bad rule is one error
        naming the profile."""
        body = body or {}
        if not isinstance(body, dict):
            raise EvalSetError(f"{where}: decontamination must be a mapping")
        for key in body:
            if key not in KEYS:
                near = difflib.get_close_matches(str(key), KEYS, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(KEYS)}"
                raise EvalSetError(f"{where}: decontamination: unknown key '{key}'; {hint}")
        sets = tuple(body.get("eval_sets") or ())
        files = {str(k): str(v) for k, v in (body.get("eval_files") or {}).items()}
        only = tuple(body.get("eval_only") or ())
        unknown = [s for s in sets if s not in known_sources]
        if unknown:
            raise EvalSetError(
                f"{where}: decontamination.eval_sets lists {unknown}, which the registry does not define"
            )
        clash = [n for n in files if n in sets]
        if clash:
            raise EvalSetError(f"{where}: decontamination: {clash} is both a source and a file")
        stray = [s for s in only if s not in sets]
        if stray:
            raise EvalSetError(
                f"{where}: decontamination.eval_only lists {stray}, which are not in eval_sets"
            )
        try:
            rules = Rules(
                ngram=int(body.get("ngram", Rules.ngram)),
                min_words=int(body.get("min_words", Rules.min_words)),
                jaccard=float(body.get("jaccard", Rules.jaccard)),
            )
        except ValueError as exc:
            raise EvalSetError(f"{where}: {exc}") from None
        return cls(sets, files, only, rules, bool(body.get("enabled", True)))

    def check_recipe_sources(self, where: str, recipe: str, sources: tuple[str, ...]) -> None:
        """An evaluation set may feed a recipe only when the profile says so (``eval_only``)."""
        bad = [s for s in sources if s in self.eval_sets and s not in self.eval_only]
        if bad:
            raise EvalSetError(
                f"{where}: {recipe} lists {bad}, which the profile declares evaluation sets; "
                "add them to decontamination.eval_only (their rows then go to eval only) or remove "
                "them from decontamination.eval_sets"
            )
