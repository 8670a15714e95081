"""Token statistics of a build's JSONL files for its dataset card: tokens per row with the
profile's tokenizer (the strings of the row's text fields; special tokens and the chat template not
counted), rows shared by several files encoded once."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from typing import IO, Any


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)


def _count_tokens(tokenizer: Any, texts: list[str], seen: dict[int, int]) -> list[int]:
    """Tokens of each text; a text already counted (the same row in another file: the dataset
    and its splits) is looked up in ``seen`` (by its hash) instead of encoded again."""
    keys = [hash(t) for t in texts]
    todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in seen}
    if todo:
        encoded = tokenizer.encode_batch(list(todo.values()), add_special_tokens=False)
        seen.update(zip(todo, (len(e.ids) for e in encoded), strict=True))
    return [seen[k] for k in keys]


def _summary(counts: list[int]) -> dict[str, Any]:
    q = statistics.quantiles(counts, n=20, method="inclusive") if len(counts) > 1 else counts * 19
    return {
        "rows": len(counts),
        "tokens": int(sum(counts)),
        "mean": round(sum(counts) / len(counts), 1) if counts else 0,
        "p50": int(statistics.median(counts)) if counts else 0,
        "p95": int(q[18]) if counts else 0,
        "max": max(counts) if counts else 0,
    }


def token_stats(
    opener: Callable[[str], IO[bytes]],
    paths: Iterable[str],
    tokenizer: Any,
    fields: tuple[str, ...],
    batch: int = 2048,
) -> dict[str, dict[str, Any]]:
    """Tokens per row of each JSONL file (the strings of the row's ``fields``, with the profile's
    tokenizer, special tokens and chat template not counted), streamed in batches of lines:
    rows, total, mean, p50, p95 and max. A row in several files is encoded once."""
    out, seen = {}, {}
    for path in paths:
        counts: list[int] = []
        with opener(path) as f:
            lines: list[str] = []
            for raw in f:
                line = raw.decode("utf-8").strip()
                if line:
                    row = json.loads(line)
                    lines.append(" ".join(_leaves([row.get(k) for k in fields])))
                if len(lines) >= batch:
                    counts += _count_tokens(tokenizer, lines, seen)
                    lines = []
            if lines:
                counts += _count_tokens(tokenizer, lines, seen)
        out[path] = _summary(counts)
    return out
