"""Small helpers that turn domain results into Dagster metadata."""

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from dagster import MetadataValue


def counts_table(title: str, counts: Mapping[str, int]) -> MetadataValue:
    """A two-column markdown table (rendered as a table in the UI)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items()) or "| (none) | 0 |"
    return MetadataValue.md(f"| {title} | rows |\n|---|---:|\n{rows}")


def ds_precision_table(figures: Mapping[str, Mapping[str, object]]) -> MetadataValue:
    """The harmful set measured on sources with human harm labels: rows in Ds, how many the
    annotators call harmful (precision), and how many of their harmful rows reached Ds (recall)."""
    if not figures:
        return MetadataValue.md("No source of the merge carries human harm labels.")

    def fmt(x: object) -> str:
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    rows = "\n".join(
        f"| {src} | {f['ds_rows']} | {f['ds_gold_harmful']} | {fmt(f['precision'])} | {f['gold_harmful']} | {fmt(f['recall'])} |"
        for src, f in figures.items()
    )
    return MetadataValue.md(
        "| source | rows in Ds | of them harmful (human) | precision | harmful (human) | recall |\n"
        f"|---|---:|---:|---:|---:|---:|\n{rows}"
    )


def value_counts(table: pa.Table, column: str) -> dict[str, int]:
    """Rows per value of ``column``, sorted by value."""
    if table.num_rows == 0:
        return {}
    vc = pc.value_counts(table.column(column)).to_pylist()
    return {str(d["values"]): int(d["counts"]) for d in sorted(vc, key=lambda d: str(d["values"]))}


def shares(prefix: str, counts: dict[str, int]) -> dict[str, MetadataValue]:
    """``{"<prefix>: <key>": share}`` as float metadata: the asset's Plots tab draws each over time."""
    total = sum(counts.values()) or 1
    return {
        f"{prefix}: {k}": MetadataValue.float(round(n / total, 4))
        for k, n in sorted(counts.items())
    }


MANIFEST_SCHEMA = pa.schema(
    [
        ("build_id", pa.string()),
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("rows", pa.int64()),
    ]
)


def manifest_files(manifest: Mapping) -> tuple[MetadataValue, pa.Table]:
    """A build's files as a markdown table for the UI, and as the asset's value (one row a file)."""
    table = "| file | rows | sha256 |\n|---|---:|---|\n" + "\n".join(
        f"| {f['path']} | {f['rows'] if f['rows'] is not None else ''} | `{f['sha256'][:16]}…` |"
        for f in manifest["files"]
    )
    rows = [{"build_id": manifest["build_id"], **f} for f in manifest["files"]]
    return MetadataValue.md(table), pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
