"""Check helpers for the patterns that repeat across assets: the blocking gate (``blocking_check``,
``gate``), the minimum-count gate (``at_least``), and factories for schema, unique ids, minimum
rows, no train/eval leakage and no evaluation prompts in train."""

from collections.abc import Callable

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import validate_table

from safetygraph.audit.decont import training_contamination
from safetygraph.audit.dedup import duplicate_ids
from safetygraph.core.tables import StoredTable
from safetygraph.recipes.splits import leaked_prompts, near_duplicate_leaks
from safetygraph.sources.thresholds import FIELDS as THRESHOLD_FIELDS


def blocking_check(asset: AssetKey, description: str, **kwargs):
    """``@asset_check`` for a gate that guards training data: blocking (a failure skips everything
    downstream in the run) and reported at ERROR severity (the alert sensor pages on it)."""
    return asset_check(asset=asset, blocking=True, description=description, **kwargs)


def gate(passed: bool, metadata: dict) -> AssetCheckResult:
    """A blocking gate's result: ERROR severity, the figures it decided on as metadata."""
    return AssetCheckResult(
        passed=bool(passed), severity=AssetCheckSeverity.ERROR, metadata=metadata
    )


def at_least(name: str, n: int, minimum: int, metadata: dict | None = None) -> AssetCheckResult:
    """The minimum-count gate: ``n`` of ``name`` against the profile's ``minimum``."""
    return gate(n >= minimum, {name: n, "minimum": minimum, **(metadata or {})})


def files_qa_check(asset: AssetKey, root: str):
    """A recipe's files QA (``safetygraph qa`` on each JSONL file, summarized in the manifest) as a
    check at WARN: it fails only where the profile chose ``thresholds.files_qa: warn`` (with
    ``block``, a failed QA fails the files step and nothing is published)."""

    @asset_check(
        asset=asset,
        name="files_qa",
        description="The QA of every JSONL file written (format, duplicates, PII, source share, "
        "labels): fails at WARN when a file's verdict is FAIL",
    )
    def _check(files: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        import json

        build_ids = files.column("build_id").unique().to_pylist() if files.num_rows else []
        summary = {}
        for build_id in build_ids:
            manifest = json.loads(settings.storage().read_bytes(root, build_id, "manifest.json"))
            summary.update(manifest.get("qa_summary") or {})
        failed = {f: s["failed"] for f, s in summary.items() if s["verdict"] != "PASS"}
        return AssetCheckResult(
            passed=not failed,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "files_checked": len(summary),
                "files_failed": len(failed),
                "failed": MetadataValue.json(failed),
                "policy": settings.thresholds().files_qa,
            },
        )

    return _check


def well_formed_check(
    asset: AssetKey,
    name: str,
    find_malformed: Callable[[pa.Table], list[dict]],
    description: str,
    partitions: PartitionsDefinition | None = None,
):
    """Blocking: ``find_malformed`` finds no pair that must never reach a training file (the
    preference and steering recipes' pairs; each recipe says what malformed means)."""

    @blocking_check(asset, description, name=name, partitions_def=partitions)
    def _check(pairs: pa.Table) -> AssetCheckResult:
        bad = find_malformed(pairs)
        return gate(not bad, {"malformed": len(bad), "examples": MetadataValue.json(bad)})

    return _check


def no_duplicates_check(
    asset: AssetKey,
    name: str,
    count_duplicates: Callable[[pa.Table], int],
    description: str,
    partitions: PartitionsDefinition | None = None,
):
    """Blocking: ``count_duplicates`` finds no row beyond the first of its kind."""

    @blocking_check(asset, description, name=name, partitions_def=partitions)
    def _check(pairs: pa.Table) -> AssetCheckResult:
        n = count_duplicates(pairs)
        return gate(n == 0, {"duplicates": n})

    return _check


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
        return gate(
            not failures,
            {
                "rows": table.num_rows,
                "model": model.__name__,
                "failing_checks": len(failures),
                "failures": MetadataValue.json(failures),
            },
        )

    return _check


def unique_ids_check(asset: AssetKey, partitions: PartitionsDefinition | None = None):
    @blocking_check(
        asset,
        name=f"{asset.path[-1]}_unique_ids",
        partitions_def=partitions,
        description="No two rows share an id.",
    )
    def _check(table: StoredTable) -> AssetCheckResult:
        dups = duplicate_ids(table)  # DuckDB over the file
        return gate(
            not dups,
            {
                "rows": table.num_rows,
                "duplicate_ids": len(dups),
                "examples": MetadataValue.json(dups[:10]),
            },
        )

    return _check


def min_rows_check(asset: AssetKey, threshold: str, partitions: PartitionsDefinition | None = None):
    """At least the profile's ``threshold`` rows (a size minimum: a field of ``Thresholds``,
    checked when the definitions load; the profile must set it)."""
    if threshold not in THRESHOLD_FIELDS:
        raise ValueError(f"min_rows_check: no threshold '{threshold}'")

    @blocking_check(
        asset,
        name=f"{asset.path[-1]}_min_rows",
        partitions_def=partitions,
        description=f"At least the profile's '{threshold}' rows.",
    )
    def _check(table: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        minimum = int(settings.required(threshold))  # the row count from the file's footer
        return gate(
            table.num_rows >= minimum,
            {"rows": table.num_rows, "minimum": minimum, "threshold": threshold},
        )

    return _check


def no_leakage_check(eval_asset: AssetKey, train_asset: AssetKey, name: str):
    """Blocking: no prompt is on both sides of a split, exactly (normalised prompt hash) or as a near
    duplicate (MinHash/Jaccard >= the profile's near_dup_threshold, 0.8 by default)."""

    @blocking_check(
        eval_asset,
        name=name,
        additional_ins={"train": AssetIn(train_asset.path)},
        description="No prompt appears in both train and eval, exactly (normalised) or as a near "
        "duplicate (MinHash/Jaccard >= near_dup_threshold, 0.8 by default).",
    )
    def _check(evals: StoredTable, train: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        leaked = leaked_prompts(train, evals)
        threshold = float(settings.thresholds().near_dup_threshold)
        near = near_duplicate_leaks(train, evals, threshold, settings.near_dup_cache())
        return gate(
            not leaked and not near,
            {
                "leaked_prompts": len(leaked),
                "near_duplicate_leaks": len(near),
                "near_dup_threshold": threshold,
                "examples": MetadataValue.json({"exact": leaked[:10], "near": near[:10]}),
            },
        )

    return _check


def no_eval_prompts_check(
    train_asset: AssetKey,
    partitions: PartitionsDefinition | None = None,
    key: str = "prompt_hash",
    text: str = "prompt",
):
    """Blocking: the recipe's training rows hold no evaluation prompt (verbatim, contained, a
    shared n-gram, one word apart or a MinHash near duplicate of one, under the profile's
    decontamination rules) and no row of an evaluation set. Checked from scratch on the training
    table, so it fails when the decontamination step did not run."""

    @blocking_check(
        train_asset,
        name="no_eval_prompts_in_train",
        partitions_def=partitions,
        additional_ins={"eval_prompts": AssetIn("eval_prompts")},
        description="No evaluation prompt (of the profile's decontamination.eval_sets), nor a copy "
        "or near copy of one, nor a row of an evaluation set, is in the training rows.",
    )
    def _check(train: StoredTable, eval_prompts, settings: BuildConfig) -> AssetCheckResult:
        decont = settings.active().decontamination
        found = training_contamination(
            train, eval_prompts, decont.rules, decont.eval_only, key, text
        )
        return gate(
            found.num_rows == 0,
            {
                "training_rows": train.num_rows,
                "eval_sets": MetadataValue.json(list(decont.names)),
                "eval_prompts": eval_prompts.num_rows,
                "contaminated_rows": int(sum(found.column("rows").to_pylist())),
                "examples": MetadataValue.json(found.slice(0, 10).to_pylist()),
                "step_enabled": decont.enabled,
            },
        )

    return _check
