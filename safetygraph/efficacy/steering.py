"""The steering recipe's efficacy: a CAA vector per trait trained from the steering files with
``steering-vectors`` (the layer chosen by a small sweep on the training rows), then on the trait's
held-out A/B questions the probability of the trait-positive option at multipliers -m, 0 and +m.

Figures: ``shift`` (mean p(+m) - p(-m), the positive option's probability), ``moved_share`` (the
share of held-out questions whose probability rises from -m to +m), per trait and their mean. The
control swaps the two answers of a seeded half of the training pairs with the positive option
first and of those with it second (the position balance kept): a vector that learns the trait from
the files beats it."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from safetygraph.efficacy.base import (
    EfficacyResult,
    EfficacySkipped,
    control_seed,
    held_out,
    timed,
)
from safetygraph.efficacy.lm import answer_logprobs, chat_prompt


@dataclass(frozen=True)
class SteeringRun:
    multiplier: float = 4.0
    heldout_share: float = 0.34
    sweep: tuple[float, ...] = (0.25, 0.4, 0.55, 0.7)  # depths of the candidate layers
    seed: int = 0


def split_rows(rows: list[dict], run: SteeringRun) -> tuple[list[dict], list[dict]]:
    """(train, held out) by a seeded hash of the row id, within each position of the positive
    option, so both sides keep the files' balance; EfficacySkipped under two rows a side."""
    train, test = [], []
    for first in (True, False):
        group = [r for r in rows if _positive_first(r) == first]
        test += [r for r in group if held_out(r["id"], run.heldout_share, run.seed)]
        train += [r for r in group if not held_out(r["id"], run.heldout_share, run.seed)]
    if len(train) < 2 or len(test) < 2:
        raise EfficacySkipped(f"{len(rows)} pairs: too few for a training and a held-out side")
    return train, test


def _positive_first(row: dict) -> bool:
    """Whether the positive option is the lower-sorting one ("(1" before "(2", "(A" before "(B")."""
    return row["answer_matching_behavior"] < row["answer_not_matching_behavior"]


def balanced(rows: list[dict]) -> list[dict]:
    """As many rows with the positive option first as second (the rest left out), so the vector
    learns the trait and not the option's position."""
    first = [r for r in rows if _positive_first(r)]
    second = [r for r in rows if not _positive_first(r)]
    n = min(len(first), len(second))
    return first[:n] + second[:n] if n else rows


def _swapped(rows: list[dict], seed: int) -> set[str]:
    """The control's swapped rows: a seeded half of each position group, so the control keeps the
    real run's balance of the positive option's position and differs only in the trait labels."""
    rng = random.Random(seed)
    out: set[str] = set()
    for first in (True, False):
        ids = sorted(r["id"] for r in rows if _positive_first(r) == first)
        out |= set(rng.sample(ids, len(ids) // 2))
    return out


def _pairs(tok, rows: list[dict], control: int, seed: int) -> list[tuple[str, str]]:
    swap = _swapped(rows, control_seed(seed, control)) if control else set()
    out = []
    for r in rows:
        pos, neg = r["answer_matching_behavior"], r["answer_not_matching_behavior"]
        if r["id"] in swap:
            pos, neg = neg, pos
        prompt = chat_prompt(tok, r["question"])
        out.append((prompt + pos, prompt + neg))
    return out


def p_positive(model, tok, rows: list[dict]) -> list[float]:
    """Per row, p(trait-positive option) between the two options."""
    items = []
    for r in rows:
        prompt = chat_prompt(tok, r["question"])
        items += [
            (prompt, r["answer_matching_behavior"]),
            (prompt, r["answer_not_matching_behavior"]),
        ]
    lp = answer_logprobs(model, tok, items)
    return [1 / (1 + math.exp(lp[2 * i + 1] - lp[2 * i])) for i in range(len(rows))]


def _measure(model, tok, vector, rows: list[dict], m: float) -> dict[str, float]:
    by_m = {}
    for mult in (-m, 0.0, m):
        if mult == 0.0:
            by_m[mult] = p_positive(model, tok, rows)
        else:
            with vector.apply(model, multiplier=mult):
                by_m[mult] = p_positive(model, tok, rows)
    n = len(rows)
    return {
        "p_minus": sum(by_m[-m]) / n,
        "p_zero": sum(by_m[0.0]) / n,
        "p_plus": sum(by_m[m]) / n,
        "shift": sum(p - q for p, q in zip(by_m[m], by_m[-m], strict=True)) / n,
        "moved_share": sum(p > q for p, q in zip(by_m[m], by_m[-m], strict=True)) / n,
    }


def trait_efficacy(model, tok, rows: list[dict], run: SteeringRun, control: int = 0) -> dict:
    """One trait: the layer sweep on its training rows, then the held-out figures."""
    import steering_vectors as sv

    train, test = split_rows(rows, run)
    n_layers = model.config.num_hidden_layers
    layers = sorted({min(n_layers - 1, round(d * n_layers)) for d in run.sweep})
    full = sv.train_steering_vector(
        model,
        tok,
        _pairs(tok, balanced(train), control, run.seed),
        layers=layers,
        read_token_index=-1,
        show_progress=False,
    )
    sweep = {}
    for layer in layers:
        one = sv.SteeringVector({layer: full.layer_activations[layer]}, full.layer_type)
        sweep[layer] = _measure(model, tok, one, train, run.multiplier)["shift"]
    best = max(layers, key=lambda layer: (sweep[layer], -layer))
    vector = sv.SteeringVector({best: full.layer_activations[best]}, full.layer_type)
    figures = _measure(model, tok, vector, test, run.multiplier)
    return {
        **figures,
        "layer": best,
        "sweep": {str(k): round(v, 4) for k, v in sweep.items()},
        "train_pairs": len(train),
        "heldout_questions": len(test),
    }


def steering_efficacy(
    model,
    tok,
    by_trait: dict[str, list[dict]],
    run: SteeringRun,
    model_name: str,
    control: int = 0,
) -> EfficacyResult:
    """Every trait's figures and their mean (traits with too few pairs are listed as skipped)."""
    details, skipped = {}, {}
    with timed() as t:
        for trait, rows in sorted(by_trait.items()):
            try:
                details[trait] = trait_efficacy(model, tok, rows, run, control)
            except EfficacySkipped as why:
                skipped[trait] = str(why)
    if not details:
        raise EfficacySkipped(f"no trait has enough pairs: {skipped}")
    figures = {
        name: round(sum(d[name] for d in details.values()) / len(details), 4)
        for name in ("shift", "moved_share", "p_minus", "p_zero", "p_plus")
    }
    figures |= {f"shift_{t}": round(d["shift"], 4) for t, d in details.items()}
    return EfficacyResult(
        recipe="steering",
        figures=figures,
        details={"traits": details, "skipped_traits": skipped},
        model=model_name,
        steps=0,
        seconds=t[0],
        control=int(control),
        config={
            "multiplier": run.multiplier,
            "heldout_share": run.heldout_share,
            "sweep": list(run.sweep),
            "seed": run.seed,
        },
    )
