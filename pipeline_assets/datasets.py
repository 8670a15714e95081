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
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    asset,
)

from pipeline_assets.keys import AUDITED, JUDGE_QUALITY, OWNER
from pipeline_assets.metadata import counts_table, shares
from pipeline_assets.source_status import MergeConfig, ready_sources, status_markdown
from resources import BuildConfig
from safetygraph.audit.neardup import near_duplicate_rate
from safetygraph.core.records import AUDITED_SCHEMA
from safetygraph.core.storage import asset_parts
from safetygraph.core.tables import StoredTable, TableStream
from safetygraph.labeling.review import confidence_distribution, coverage
from safetygraph.recipes.refusal.dataset import MergeStream, dataset_info


def _coverage_markdown(table: pa.Table, limit: int = 60) -> str:
    rows = table.to_pylist()
    body = "\n".join(
        f"| {r['outcome']} | {r['category']} | {r['source']} | {r['rows']} |" for r in rows[:limit]
    )
    more = f"\n\n{len(rows) - limit} more rows in the asset's coverage" if len(rows) > limit else ""
    return f"| outcome | harm category | source | rows |\n|---|---|---|---:|\n{body}{more}"


def build(blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]]):
    @asset(
        deps=[AUDITED, JUDGE_QUALITY],
        group_name="datasets",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="The multi-head refusal dataset: the audited sources of the active profile, merged with "
        "cross-source duplicates removed. Fails (or, with allow_partial, reports) when a source is not built, "
        "blocked by a check or stale.",
    )
    def refusal_dataset(
        context: AssetExecutionContext, config: MergeConfig, settings: BuildConfig
    ) -> TableStream:
        profile = settings.active()
        ready, statuses = ready_sources(
            context.instance, profile.sources, blocking_checks, config.allow_partial
        )
        bad = [s for s in statuses.values() if not s.ok]
        storage = settings.storage()
        tables = {
            s: StoredTable(storage, asset_parts(AUDITED.path, s), settings.batch_rows)
            for s in ready
        }
        merge = MergeStream(tables, ready)
        if bad:
            context.log.warning("partial merge; excluded: " + ", ".join(s.source for s in bad))

        def figures(merged: StoredTable) -> dict:
            # computed by DuckDB over the file just written, not over rows held here
            info = dataset_info(merged)
            return {
                "profile": profile.name,
                "sources": MetadataValue.md(status_markdown(statuses)),
                "excluded_sources": [s.source for s in bad],
                "cross_source_duplicates_removed": merge.stats["cross_source_duplicates_removed"],
                **near_duplicate_rate(
                    merged, float(profile.thresholds.get("near_dup_threshold", 0.8))
                ),
                "by_source": counts_table("source", info["by_source"]),
                "by_outcome": counts_table("outcome", info["by_outcome"]),
                # numbers the UI plots over materializations (the label mix and the source mix)
                **shares("label mix", info["by_outcome"]),
                **shares("source mix", info["by_source"]),
                "by_harm_category": counts_table("harm category", info["by_harm_category"]),
                "dataset_info": MetadataValue.json(info),
                "confidence": counts_table("confidence bucket", confidence_distribution(merged)),
                "coverage": MetadataValue.md(_coverage_markdown(coverage(merged))),
            }

        return TableStream(AUDITED_SCHEMA, merge.batches(), figures)

    return [refusal_dataset]
