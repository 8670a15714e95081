"""Gates on labeling: the label schema per source, and the judge's held-out quality floors."""

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    MetadataValue,
    PartitionsDefinition,
)
from safetygraph.location.checks.factories import blocking_check, gate, schema_check
from safetygraph.location.pipeline_assets.keys import (
    JUDGE_QUALITY,
    LABELS,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import (
    LabeledRecord,
)


def per_source(partitions: PartitionsDefinition) -> list:
    return [schema_check(LABELS, LabeledRecord, partitions)]


def dataset() -> list:
    @blocking_check(
        JUDGE_QUALITY,
        description="The judge's held-out figures meet the profile's judge_floors (e.g. refusal_accuracy, refusal_kappa); "
        "a profile with floors but no human-labelled rows fails.",
    )
    def judge_meets_floors(judge_quality: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        floors = dict(settings.thresholds().judge_floors)
        halves = set(judge_quality.column("half").to_pylist())
        half = next((h for h in ("report", "all", "shipped") if h in halves), "all")
        by_method: dict[str, dict[str, float]] = {"judge": {}, "baseline": {}}
        for r in judge_quality.to_pylist():
            if r["half"] == half and r["model"] == "all" and r["method"] in by_method:
                by_method[r["method"]][f"{r['task']}_{r['metric']}"] = r["value"]
        figures, baseline = by_method["judge"], by_method["baseline"]
        below = {
            k: {"value": figures.get(k), "floor": v}
            for k, v in floors.items()
            if figures.get(k) is None or figures[k] < v
        }
        unbuilt = [src for src in settings.active().sources if settings.stored(LABELS, src) is None]
        return gate(
            not below,
            {
                # a source that is blocked or not built contributes no human-labelled rows
                "sources_without_labels": ", ".join(unbuilt) or "none",
                "half": half,
                "floors": MetadataValue.json(floors),
                "judge": MetadataValue.json(figures),
                "baseline": MetadataValue.json(baseline),
                "below_floor": MetadataValue.json(below),
            },
        )

    return [judge_meets_floors]
