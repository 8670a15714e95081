"""Trait answers: for one trait and each scenario, a trait-positive and a neutral description of the
scenario's character, then what the character would say under each description. Four requests a
scenario, in two rounds, through the generation runner: cached (a re-run pays nothing), checkpointed
every ``chunk_size`` results (a killed run repeats at most one chunk), concurrent as the backend
allows, with progress in the caller's log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from safetygraph.core.records import RAW_SCHEMA, conform
from safetygraph.generation import (
    Backend,
    GenerationConfig,
    GenerationStats,
    RequestCache,
    generate,
)
from safetygraph.recipes.steering.traits import Trait, TraitBook

ANSWER_SCHEMA = pa.schema(
    [
        pa.field("trait", pa.string(), nullable=False),
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("scenario", pa.string(), nullable=False),
        pa.field("character", pa.string(), nullable=False),
        pa.field("description_positive", pa.string()),
        pa.field("description_neutral", pa.string()),
        pa.field("answer_positive", pa.string()),
        pa.field("answer_neutral", pa.string()),
        pa.field("model", pa.string()),
        pa.field("error", pa.string()),
    ]
)
KINDS = ("positive", "neutral")


def scenarios(rows: pa.Table, character_key: str, default_character: str) -> pa.Table:
    """(scenario_id, source, scenario, character) from a dialogue source's rows: the scenario is the
    row's prompt, the character the ``character_key`` field the source left in ``meta``."""
    characters = []
    for meta in rows.column("meta").to_pylist():
        value = (json.loads(meta) if meta else {}).get(character_key)
        characters.append(str(value).strip() if value else default_character)
    return pa.table(
        {
            "scenario_id": rows.column("id"),
            "source": rows.column("source"),
            "scenario": rows.column("prompt"),
            "character": pa.array(characters, pa.string()),
        }
    )


def _request_rows(ids: list[str], texts: list[str], source: str = "steering") -> pa.Table:
    return conform(
        pa.table(
            {
                "id": ids,
                "source": [source] * len(ids),
                "source_ref": ids,
                "messages": [[{"role": "user", "content": t}] for t in texts],
                "prompt": texts,
                "tags": [[] for _ in ids],
            }
        ),
        RAW_SCHEMA,
    )


def _rid(trait: str, scenario_id: str, step: str) -> str:
    return hashlib.sha256(f"{trait}\x1f{scenario_id}\x1f{step}".encode()).hexdigest()[:24]


def _fill(template: str, **values: Any) -> str:
    return template.format(**values)


def _answer_requests(
    rows: list[dict], got: dict[str, dict], trait: Trait, book: TraitBook, ask: dict[str, str]
) -> tuple[list[str], list[str]]:
    """(request ids, texts) of the answers: one per scenario and kind whose description came back
    (a failed description asks for no answer)."""
    ids, texts = [], []
    for r in rows:
        for kind in KINDS:
            d = got[_rid(trait.name, r["scenario_id"], f"describe:{kind}")]
            if d["response"] is None:
                continue
            ids.append(_rid(trait.name, r["scenario_id"], f"answer:{kind}"))
            texts.append(
                _fill(
                    book.prompts["answer"],
                    scenario=r["scenario"],
                    character=r["character"],
                    description=d["response"].strip(),
                    **ask,
                )
            )
    return ids, texts


def _answer_rows(
    rows: list[dict], got: dict[str, dict], trait: Trait, model: str
) -> list[dict[str, Any]]:
    """One row per scenario: its two descriptions and answers, the first error of any of them."""
    out = []
    for r in rows:
        row = {"trait": trait.name, **r, "model": model, "error": None}
        for kind in KINDS:
            d = got[_rid(trait.name, r["scenario_id"], f"describe:{kind}")]
            a = got.get(_rid(trait.name, r["scenario_id"], f"answer:{kind}"))
            row[f"description_{kind}"] = d["response"]
            row[f"answer_{kind}"] = a["response"] if a else None
            error = d["generation_error"] or (a["generation_error"] if a else None)
            row["error"] = row["error"] or error
        out.append(row)
    return out


def trait_answers(
    table: pa.Table,
    trait: Trait,
    book: TraitBook,
    config: GenerationConfig,
    backend_for: Callable[[GenerationConfig], Backend],
    cache: RequestCache | None = None,
    chunk_size: int = 100,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[pa.Table, dict[str, GenerationStats]]:
    """The two descriptions and two answers of every scenario in ``table`` (see ``scenarios``)."""
    rows = table.to_pylist()
    ask = {"trait": trait.name.replace("_", " "), "definition": trait.definition}
    desc_ids, desc_texts = [], []
    for r in rows:
        for kind in KINDS:
            desc_ids.append(_rid(trait.name, r["scenario_id"], f"describe:{kind}"))
            desc_texts.append(
                _fill(book.prompts[kind], scenario=r["scenario"], character=r["character"], **ask)
            )

    def run(ids: list[str], texts: list[str]) -> tuple[pa.Table, GenerationStats]:
        return generate(
            _request_rows(ids, texts),
            [config],
            backend_for,
            cache=cache,
            chunk_size=chunk_size,
            progress=progress,
        )

    described, desc_stats = run(desc_ids, desc_texts)
    got = dict(zip(described.column("id").to_pylist(), described.to_pylist(), strict=True))
    answered, ans_stats = run(*_answer_requests(rows, got, trait, book, ask))
    got.update(zip(answered.column("id").to_pylist(), answered.to_pylist(), strict=True))
    out = _answer_rows(rows, got, trait, config.model)
    return pa.Table.from_pylist(out, schema=ANSWER_SCHEMA), {
        "descriptions": desc_stats,
        "answers": ans_stats,
    }
