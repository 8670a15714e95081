"""Efficacy, one asset per recipe downstream of its files: a short, seeded training or steering
run on the profile's efficacy model and a before/after measurement on the recipe's held-out rows
(``safetygraph.efficacy``). The figures go to the asset's metadata (plotted across
materializations), beside the build (``EFFICACY.md``, the card's efficacy section) and into the
``safetygraph`` output. Where the extra or the model is missing the asset is skipped with the
reason (an observation carries it), not failed. The model steps carry the profile's GPU placement,
as generation does."""

from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetObservation,
    MetadataValue,
    Output,
    asset,
)
from safetygraph.location.pipeline_assets.keys import EFFICACY, OWNER
from safetygraph.location.resources import BuildConfig

from safetygraph.efficacy import EfficacySkipped
from safetygraph.efficacy.runs import HEADLINES, floor_verdict, run_recipe, write_beside

GROUP = "efficacy"
FIGURES_SCHEMA = pa.schema(
    [
        ("recipe", pa.string()),
        ("figure", pa.string()),
        ("value", pa.float64()),
        ("build_id", pa.string()),
    ]
)
DESCRIPTIONS = {
    "steering": "CAA vectors per trait from the steering files (steering-vectors; layer by a small "
    "sweep), then p(trait-positive option) on held-out A/B questions at multipliers -m, 0, +m",
    "preference": "DPO (TRL, LoRA) for a bounded number of steps on train.jsonl; eval.jsonl's pairs "
    "and the judge's outcome mix of held-out answers, before and after",
    "refusal": "A refusal detector (the project's classifier recipe) trained on the export's train "
    "split, measured on its eval split against the judge and against human labels",
    "circuit_breaker": "Representation rerouting (LoRA) for a bounded number of steps on the stage-2 "
    "train.jsonl; similarity to the frozen model on held-out Ds and Dr, and the judge's rates, before and after",
}


def efficacy_outputs(
    context: AssetExecutionContext, settings: BuildConfig, recipe: str, files: pa.Table
) -> Iterator:
    """The run's figures as the asset's value and metadata, or an observation with the reason it
    was skipped (and no materialization)."""
    key = EFFICACY[recipe][0]
    build_ids = files.column("build_id").unique().to_pylist() if files.num_rows else []
    if not build_ids:
        reason = f"no {recipe} build to measure: materialize its files first"
    else:
        build_id = build_ids[-1]
        profile, eff = settings.profile, settings.active().efficacy
        try:
            result = run_recipe(recipe, settings.storage(), build_id, eff, profile)
        except EfficacySkipped as why:
            reason = str(why)
        else:
            folder = write_beside(settings.storage(), result, build_id, eff)
            yield Output(_figures(result, build_id), metadata=_metadata(result, eff, folder))
            return
    context.log.warning(f"{key.to_user_string()} skipped: {reason}")
    yield AssetObservation(asset_key=key, metadata={"skipped": reason})


def _figures(result, build_id: str) -> pa.Table:
    names = list(result.figures)
    return pa.table(
        {
            "recipe": [result.recipe] * len(names),
            "figure": names,
            "value": [float(result.figures[n]) for n in names],
            "build_id": [build_id] * len(names),
        },
        schema=FIGURES_SCHEMA,
    )


def _metadata(result, eff, folder: str) -> dict:
    passed, figure, value, floor = floor_verdict(result, eff)
    return {
        **{name: MetadataValue.float(float(v)) for name, v in result.figures.items()},
        "headline": f"{figure} = {value:.4f} (floor {floor}: {'met' if passed else 'not met'})",
        "model": result.model,
        "steps": result.steps,
        "seconds": MetadataValue.float(round(result.seconds, 1)),
        "config": MetadataValue.json(result.config),
        "details": MetadataValue.json(result.details),
        "card": MetadataValue.path(f"{folder}/EFFICACY.md"),
    }


def _build_one(recipe: str, op_tags: dict | None):
    key, files_key = EFFICACY[recipe]

    @asset(
        key=key,
        group_name=GROUP,
        ins={"files": AssetIn(files_key)},
        output_required=False,
        op_tags=op_tags or None,
        kinds={"python", "torch"} if recipe != "refusal" else {"python", "sklearn"},
        owners=[OWNER],
        description=f"{DESCRIPTIONS[recipe]}. Headline: {HEADLINES[recipe][0]} "
        f"({HEADLINES[recipe][2]}). Skipped with the reason where the extra or the model is missing.",
    )
    def _efficacy(context: AssetExecutionContext, settings: BuildConfig, files: pa.Table):
        yield from efficacy_outputs(context, settings, recipe, files)

    return _efficacy


def build(gpu_tags: dict | None) -> list:
    """The four efficacy assets; the model runs carry the GPU placement (the refusal detector
    needs none)."""
    return [_build_one(r, None if r == "refusal" else gpu_tags) for r in EFFICACY]
