"""audited (one partition per source) and review_sample: duplicates removed and PII scrubbed per
source, and the stratified human-review sample of the merged dataset."""

import pyarrow as pa
from dagster import AssetExecutionContext, PartitionsDefinition, asset
from safetygraph.location.pipeline_assets.keys import OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table
from safetygraph.location.resources import BuildConfig

from safetygraph.audit.auditor import Auditor
from safetygraph.core.records import AUDITED_SCHEMA
from safetygraph.core.tables import StoredTable, TableStream, table_batches
from safetygraph.labeling.review import review_sample as make_review_sample
from safetygraph.labeling.review import to_csv


def build(partitions: PartitionsDefinition):
    @asset(
        partitions_def=partitions,
        group_name="audit",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Labels with exact duplicates removed; PII (email, phone, SSN, Luhn-valid card, IP, street "
        "address, API keys) counted and scrubbed to [TYPE] placeholders in every turn.",
    )
    def audited(
        context: AssetExecutionContext, labels: StoredTable, settings: BuildConfig
    ) -> TableStream:
        # exact-duplicate state (hashes seen) lives in DuckDB across the batches
        auditor = Auditor(scrub=bool(settings.thresholds().scrub_pii))

        def figures(_written: StoredTable) -> dict:
            stats = auditor.stats
            return {
                "duplicates_removed": stats.duplicates_removed,
                "rows_with_pii": stats.rows_with_pii,
                "pii_scrubbed": stats.scrubbed,
                "pii_rows_by_type": counts_table("pii type", stats.pii_rows_by_type),
            }

        return TableStream(
            AUDITED_SCHEMA, map(auditor.feed, table_batches(labels, settings.batch_rows)), figures
        )

    @asset(
        group_name="audit",
        kinds={"duckdb", "csv"},
        owners=[OWNER],
        description="A stratified human-review sample (outcome x confidence bucket, review_rate of each, at least one "
        "per stratum) written to reports/review_sample.csv for an annotator to fill in; "
        "`safetygraph review-import FILE` reports agreement with the judge.",
    )
    def review_sample(
        context: AssetExecutionContext, refusal_dataset: StoredTable, settings: BuildConfig
    ) -> pa.Table:
        rate = float(settings.thresholds().review_rate)
        sample = make_review_sample(refusal_dataset, rate, settings.active().seed)
        storage = settings.storage()
        storage.write_bytes(to_csv(sample).encode(), "reports", "review_sample.csv")
        context.add_output_metadata(
            {
                "rows": sample.num_rows,
                "rate": rate,
                "path": storage.uri("reports", "review_sample.csv"),
            }
        )
        return sample

    return [audited, review_sample]
