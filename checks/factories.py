"""Check factories for the patterns that repeat across assets: schema, unique ids, minimum rows,
no train/eval leakage."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)

from resources import BuildConfig
from safetygraph.audit.dedup import duplicate_ids
from safetygraph.core.tables import StoredTable
from safetygraph.recipes.splits import leaked_prompts, near_duplicate_leaks
from schemas import validate_table


def schema_check(
    asset: AssetKey, model, partitions: PartitionsDefinition | None = None, blocking: bool = True
):
    @asset_check(
        asset=asset,
        name=f"{asset.path[-1]}_schema",
        blocking=blocking,
        partitions_def=partitions,
        description=f"Every row satisfies the pandera model {model.__name__}.",
    )
    def _check(table: StoredTable) -> AssetCheckResult:
        failures = validate_table(model, table)  # streamed from the file, batch by batch
        return AssetCheckResult(
            passed=not failures,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows": table.num_rows,
                "model": model.__name__,
                "failing_checks": len(failures),
                "failures": MetadataValue.json(failures),
            },
        )

    return _check


def unique_ids_check(asset: AssetKey, partitions: PartitionsDefinition | None = None):
    @asset_check(
        asset=asset,
        name=f"{asset.path[-1]}_unique_ids",
        blocking=True,
        partitions_def=partitions,
        description="No two rows share an id.",
    )
    def _check(table: StoredTable) -> AssetCheckResult:
        dups = duplicate_ids(table)  # DuckDB over the file
        return AssetCheckResult(
            passed=not dups,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows": table.num_rows,
                "duplicate_ids": len(dups),
                "examples": MetadataValue.json(dups[:10]),
            },
        )

    return _check


def min_rows_check(asset: AssetKey, threshold: str, partitions: PartitionsDefinition | None = None):
    @asset_check(
        asset=asset,
        name=f"{asset.path[-1]}_min_rows",
        blocking=True,
        partitions_def=partitions,
        description=f"At least the profile's '{threshold}' rows.",
    )
    def _check(table: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        minimum = int(settings.threshold(threshold))  # the row count from the file's footer
        return AssetCheckResult(
            passed=table.num_rows >= minimum,
            severity=AssetCheckSeverity.ERROR,
            metadata={"rows": table.num_rows, "minimum": minimum, "threshold": threshold},
        )

    return _check


def no_leakage_check(eval_asset: AssetKey, train_asset: AssetKey, name: str):
    """Blocking: no prompt is on both sides of a split, exactly (normalised prompt hash) or as a near
    duplicate (MinHash/Jaccard >= the profile's near_dup_threshold, 0.8 by default)."""

    @asset_check(
        asset=eval_asset,
        name=name,
        blocking=True,
        additional_ins={"train": AssetIn(train_asset.path)},
        description="No prompt appears in both train and eval, exactly (normalised) or as a near "
        "duplicate (MinHash/Jaccard >= near_dup_threshold, 0.8 by default).",
    )
    def _check(evals: StoredTable, train: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        leaked = leaked_prompts(train, evals)
        threshold = float(settings.active().thresholds.get("near_dup_threshold", 0.8))
        near = near_duplicate_leaks(train, evals, threshold)
        return AssetCheckResult(
            passed=not leaked and not near,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "leaked_prompts": len(leaked),
                "near_duplicate_leaks": len(near),
                "near_dup_threshold": threshold,
                "examples": MetadataValue.json({"exact": leaked[:10], "near": near[:10]}),
            },
        )

    return _check
