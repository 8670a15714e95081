"""Gates on QA and the export: every QA metric meets its threshold; every file matches its manifest."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    MetadataValue,
    asset_check,
)
from safetygraph.location.checks.factories import blocking_check, gate
from safetygraph.location.pipeline_assets.keys import (
    EXPORT,
    QA_REPORT,
)
from safetygraph.location.resources import BuildConfig

from safetygraph.export.files import EXPORT_ROOT, verify_export


def dataset() -> list:
    @blocking_check(
        QA_REPORT,
        description="Every QA metric meets its threshold and every expectation holds.",
    )
    def qa_thresholds(qa_report: pa.Table) -> AssetCheckResult:
        failed = qa_report.filter(pc.invert(qa_report.column("passed"))).to_pylist()
        return gate(
            not failed,
            {"metrics": qa_report.num_rows, "failed": MetadataValue.json(failed)},
        )

    @asset_check(
        asset=EXPORT, description="Every exported file matches its manifest (sha256 and row count)."
    )
    def export_matches_manifest(export: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        build_id = export.column("build_id")[0].as_py()
        problems = verify_export(settings.storage(), build_id)
        return gate(
            not problems,
            {
                "build_id": build_id,
                "export_dir": settings.storage().uri(EXPORT_ROOT, build_id),
                "problems": MetadataValue.json(problems),
            },
        )

    return [qa_thresholds, export_matches_manifest]
