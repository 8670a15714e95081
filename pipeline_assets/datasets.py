"""refusal_dataset: the merge of the active profile's sources (source readiness: source_status.py).

The merge reads ``audited`` for the profile's partitions only. Before reading, it asks the Dagster
instance for each source whether it was built, whether a blocking check on its chain failed on
the latest evaluation, and whether its chain is stale (an upstream asset re-materialized after its
downstream, as happens when a blocking check skips the rest of the chain). Such a source is
reported, and the merge fails unless the run config allows a partial merge, in which case the
excluded sources are listed in the metadata. It never half-merges silently.
"""

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    MetadataValue,
    Output,
    multi_asset,
)
from safetygraph.location.pipeline_assets.decontamination import (
    decontaminate,
    decontamination_metadata,
    eval_only_hashes,
)
from safetygraph.location.pipeline_assets.keys import AUDITED, JUDGE_QUALITY, OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table, shares, value_counts
from safetygraph.location.pipeline_assets.source_status import (
    MergeConfig,
    ready_sources,
    status_markdown,
)
from safetygraph.location.resources import BuildConfig

from safetygraph.audit.neardup import near_duplicate_rate
from safetygraph.core.records import AUDITED_SCHEMA, REFUSAL_SPLIT_SCHEMA
from safetygraph.core.tables import StoredTable, TableStream, read_columns
from safetygraph.labeling.review import confidence_distribution, coverage
from safetygraph.recipes.refusal.dataset import MergeStream, dataset_info
from safetygraph.recipes.splits import holdout, split_batches


def _coverage_markdown(table: pa.Table, limit: int = 60) -> str:
    rows = table.to_pylist()
    body = "\n".join(
        f"| {r['outcome']} | {r['category']} | {r['source']} | {r['rows']} |" for r in rows[:limit]
    )
    more = f"\n\n{len(rows) - limit} more rows in the asset's coverage" if len(rows) > limit else ""
    return f"| outcome | harm category | source | rows |\n|---|---|---|---:|\n{body}{more}"


MERGE_SPEC = dict(
    name="refusal_merge",
    outs={
        "refusal_dataset": AssetOut(
            group_name="datasets",
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="The multi-head refusal dataset: the audited sources of the active profile, "
            "merged with cross-source duplicates and evaluation prompts removed. Fails (or, with "
            "allow_partial, reports) when a source is not built, blocked by a check or stale.",
        ),
        "dataset_decontamination": AssetOut(
            group_name="datasets",
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="Rows of the profile's sources that the merge kept out of training: "
            "removed (an evaluation prompt, a copy or near copy of one: which set, which prompt, "
            "which rule, which n-gram or Jaccard) or eval only (an evaluation set the profile "
            "builds from). The refusal and circuit-breaker recipes read the merge.",
        ),
    },
    deps=[AUDITED, JUDGE_QUALITY],
)

SPLIT_SPEC = dict(
    name="refusal_split",
    outs={
        "refusal_train": AssetOut(
            group_name="datasets",
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="The refusal recipe's training rows: the 90% side of a holdout of the "
            "refusal dataset stratified by source and outcome, drawn per prompt cluster.",
        ),
        "refusal_eval": AssetOut(
            group_name="datasets",
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="The refusal recipe's eval holdout; no prompt, exact or near duplicate, "
            "is on both sides. Independent of the circuit breaker's split and its gates.",
        ),
    },
)


def merge_outputs(
    context: AssetExecutionContext,
    config: MergeConfig,
    settings: BuildConfig,
    eval_prompts: pa.Table,
    blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
):
    """refusal_merge's two outputs: the decontamination table, then the merged rows, streamed
    (the sources that are ready: built, unblocked, fresh; see source_status.py)."""
    profile = settings.active()
    ready, statuses = ready_sources(
        context.instance, profile.sources, blocking_checks, config.allow_partial
    )
    bad = [s for s in statuses.values() if not s.ok]
    tables = settings.stored_partitions(AUDITED, ready)
    narrow = [read_columns(tables[s], ["prompt_hash", "prompt", "source"]) for s in ready]
    decont = decontaminate(
        settings,
        pa.concat_tables(narrow)
        if narrow
        else pa.table({c: pa.array([], pa.string()) for c in ("prompt_hash", "prompt", "source")}),
        eval_prompts,
    )
    removed = decont.filter(pc.equal(decont.column("action"), "removed"))
    merge = MergeStream(tables, ready, exclude=removed)
    if bad:
        context.log.warning("partial merge; excluded: " + ", ".join(s.source for s in bad))
    yield Output(decont, "dataset_decontamination", metadata=decontamination_metadata(decont))

    def figures(merged: StoredTable) -> dict:
        # computed by DuckDB over the file just written, not over rows held here
        info = dataset_info(merged)
        return {
            "profile": profile.name,
            "sources": MetadataValue.md(status_markdown(statuses)),
            "excluded_sources": [s.source for s in bad],
            "cross_source_duplicates_removed": merge.stats.cross_source_duplicates_removed,
            "decontamination_removed": merge.stats.decontamination_removed,
            **near_duplicate_rate(
                merged, float(profile.thresholds.near_dup_threshold), settings.near_dup_cache()
            ),
            "by_source": counts_table("source", info.by_source),
            "by_outcome": counts_table("outcome", info.by_outcome),
            # numbers the UI plots over materializations (the label mix and the source mix)
            **shares("label mix", info.by_outcome),
            **shares("source mix", info.by_source),
            "by_harm_category": counts_table("harm category", info.by_harm_category),
            "dataset_info": MetadataValue.json(info.as_dict()),
            "confidence": counts_table("confidence bucket", confidence_distribution(merged)),
            "coverage": MetadataValue.md(_coverage_markdown(coverage(merged))),
        }

    yield Output(TableStream(AUDITED_SCHEMA, merge.batches(), figures), "refusal_dataset")


@multi_asset(**SPLIT_SPEC)
def refusal_split(
    context: AssetExecutionContext,
    refusal_dataset: StoredTable,
    dataset_decontamination: pa.Table,
    settings: BuildConfig,
):
    cut = holdout(
        refusal_dataset,
        float(settings.thresholds().eval_fraction),
        settings.active().seed,
        float(settings.thresholds().near_dup_threshold),
        "label_outcome",
        settings.active().decontamination.eval_only,
        eval_only_hashes(dataset_decontamination),
        settings.near_dup_cache(),
    )
    context.log.info(f"refusal train={cut.train.num_rows} eval={cut.eval.num_rows}")
    for name, split, narrow in (
        ("refusal_train", "train", cut.train),
        ("refusal_eval", "eval", cut.eval),
    ):
        metadata = {
            "holdout": MetadataValue.json(cut.report),
            "rows_in": refusal_dataset.num_rows,
            "by_outcome": counts_table("outcome", value_counts(narrow, "label_outcome")),
            "by_source": counts_table("source", value_counts(narrow, "source")),
        }
        yield Output(
            TableStream(
                REFUSAL_SPLIT_SCHEMA,
                split_batches(
                    refusal_dataset,
                    cut.assignment,
                    split,
                    settings.batch_rows,
                    REFUSAL_SPLIT_SCHEMA,
                ),
                lambda _written, m=metadata: m,
            ),
            name,
        )


def build(blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]]) -> list:
    """The merge reads each source's blocking checks (``blocking_checks``) before it reads the rows."""

    @multi_asset(**MERGE_SPEC)
    def refusal_merge(
        context: AssetExecutionContext,
        config: MergeConfig,
        settings: BuildConfig,
        eval_prompts: pa.Table,
    ):
        yield from merge_outputs(context, config, settings, eval_prompts, blocking_checks)

    return [refusal_merge, refusal_split]
