"""One efficacy run from a published build: the recipe's files read back from storage, the model
the profile's ``efficacy`` section names, the run's bounds from it, and the result written beside
the build (``efficacy.json`` and ``EFFICACY.md``, the card's efficacy section; the manifest lists
what the build published, so these come after it and are not in it). The Dagster assets and
``bench/efficacy.py`` both call ``run_recipe``."""

from __future__ import annotations

import io
import json
import re

import pyarrow.parquet as pq

from safetygraph.core.storage import Storage
from safetygraph.efficacy.base import (
    MODEL_RECIPES,
    EfficacyResult,
    EfficacySkipped,
    load_model,
    missing,
    model_label,
    read_jsonl,
    resolve_model,
)
from safetygraph.export.files import EXPORT_ROOT
from safetygraph.recipes.circuit_breaker.files import STAGE2_ROOT
from safetygraph.recipes.preference.files import PREFERENCE_ROOT
from safetygraph.recipes.steering.files import STEERING_ROOT
from safetygraph.sources.recipe_settings import EfficacySettings

ROOTS = {
    "steering": STEERING_ROOT,
    "preference": PREFERENCE_ROOT,
    "refusal": EXPORT_ROOT,
    "circuit_breaker": STAGE2_ROOT,
}
# each recipe's headline figure, the floor setting it is held to, and what it means
HEADLINES = {
    "steering": ("shift", "steering_shift_min", "mean p(trait-positive option) at +m minus at -m"),
    "preference": (
        "reward_accuracy",
        "preference_reward_accuracy_min",
        "held-out pairs whose DPO implicit reward ranks the chosen answer first",
    ),
    "refusal": (
        "judge_f1",
        "refusal_f1_min",
        "the detector's F1 against the judge on the eval split",
    ),
    "circuit_breaker": (
        "selectivity",
        "circuit_breaker_selectivity_min",
        "held-out Dr minus trained Ds representation similarity to the frozen model",
    ),
}


def _steering(storage, build_id, s, model, tok, name, control, judge):
    from safetygraph.efficacy.steering import SteeringRun, steering_efficacy

    manifest = json.loads(storage.read_bytes(STEERING_ROOT, build_id, "manifest.json"))
    traits = sorted(
        {
            f["path"].split("/")[1][: -len(".jsonl")]
            for f in manifest["files"]
            if f["path"].startswith("caa/") and f["path"].endswith(".jsonl")
        }
    )
    by_trait = {
        t: read_jsonl(storage, STEERING_ROOT, build_id, "caa", f"{t}.jsonl") for t in traits
    }
    run = SteeringRun(multiplier=s.steering_multiplier, heldout_share=s.heldout_share, seed=s.seed)
    return steering_efficacy(model, tok, by_trait, run, name, control)


def _preference(storage, build_id, s, model, tok, name, control, judge):
    from safetygraph.efficacy.preference import PreferenceRun, preference_efficacy

    train = read_jsonl(storage, PREFERENCE_ROOT, build_id, "train.jsonl")
    evals = read_jsonl(storage, PREFERENCE_ROOT, build_id, "eval.jsonl")
    run = PreferenceRun(
        steps=s.dpo_steps,
        learning_rate=s.dpo_learning_rate,
        questions=s.questions,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
    )
    return preference_efficacy(model, tok, train, evals, judge, run, name, control)


def _circuit_breaker(storage, build_id, s, model, tok, name, control, judge):
    from safetygraph.efficacy.circuit_breaker import RerouteRun, circuit_breaker_efficacy

    train = read_jsonl(storage, STAGE2_ROOT, build_id, "stage2", "train.jsonl")
    evals = read_jsonl(storage, STAGE2_ROOT, build_id, "stage2", "eval.jsonl")
    run = RerouteRun(
        steps=s.rr_steps,
        learning_rate=s.rr_learning_rate,
        questions=s.questions,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
    )
    return circuit_breaker_efficacy(model, tok, train, evals, judge, run, name, control)


def _refusal(storage: Storage, build_id: str, s: EfficacySettings, control: int) -> EfficacyResult:
    from safetygraph.efficacy.refusal import refusal_efficacy

    manifest = json.loads(storage.read_bytes(EXPORT_ROOT, build_id, "manifest.json"))
    paths = [f["path"] for f in manifest["files"]]

    def table(split: str):
        """The split's Parquet file as the manifest names it (``train.parquet``, or a release's
        ``train_v<version>.parquet``)."""
        name = next((p for p in paths if re.fullmatch(rf"{split}(_v[^/]+)?\.parquet", p)), None)
        if name is None:
            raise EfficacySkipped(f"the export {build_id} has no {split} split file")
        return pq.read_table(io.BytesIO(storage.read_bytes(EXPORT_ROOT, build_id, name)))

    return refusal_efficacy(table("train"), table("eval"), s.seed, control)


MODEL_RUNS = {"steering": _steering, "preference": _preference, "circuit_breaker": _circuit_breaker}


def run_recipe(
    recipe: str,
    storage: Storage,
    build_id: str,
    settings: EfficacySettings,
    profile: str,
    control: int = 0,
    judge=None,
) -> EfficacyResult:
    """``recipe``'s efficacy on the build ``build_id`` (``control`` k >= 1: the k-th shuffled
    control draw); EfficacySkipped (with the reason) where the extra, the model or the rows are
    missing."""
    why = missing(recipe)
    if why:
        raise EfficacySkipped(why)
    if recipe not in MODEL_RECIPES:
        return _refusal(storage, build_id, settings, control)
    name = resolve_model(settings.model, profile)
    model, tok = load_model(name, settings.seed)
    if judge is None:
        from safetygraph.efficacy.judged import offline_judge

        judge = offline_judge()
    return MODEL_RUNS[recipe](
        storage, build_id, settings, model, tok, model_label(name), control, judge
    )


def floor_verdict(
    result: EfficacyResult, settings: EfficacySettings
) -> tuple[bool, str, float, float]:
    """(passed, figure name, value, floor) of the recipe's headline figure."""
    figure, floor_name, _ = HEADLINES[result.recipe]
    floor = float(getattr(settings, floor_name))
    value = float(result.figures[figure])
    return value >= floor, figure, value, floor


def markdown(result: EfficacyResult, settings: EfficacySettings) -> str:
    """The card's efficacy section: the figures, how they were made, the floor."""
    passed, figure, value, floor = floor_verdict(result, settings)
    lines = [
        f"# Efficacy: {result.recipe}",
        "",
        f"Model: {result.model}; steps: {result.steps}; {result.seconds:.0f} s; seed {settings.seed}.",
        f"Headline: {figure} = {value:.4f} ({HEADLINES[result.recipe][2]}); floor {floor} "
        f"({'met' if passed else 'NOT met'}).",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {k} | {v:.4f} |" for k, v in result.figures.items()),
        "",
        "Run configuration: `" + json.dumps(result.config, sort_keys=True) + "`",
    ]
    return "\n".join(lines) + "\n"


def write_beside(
    storage: Storage, result: EfficacyResult, build_id: str, settings: EfficacySettings
) -> str:
    """``efficacy.json`` and ``EFFICACY.md`` in the build's folder (each written atomically); the
    folder's URI."""
    root = ROOTS[result.recipe]
    storage.write_bytes(
        json.dumps(result.as_dict(), indent=2).encode(), root, build_id, "efficacy.json"
    )
    storage.write_bytes(markdown(result, settings).encode(), root, build_id, "EFFICACY.md")
    return storage.uri(root, build_id)
