"""Small helpers that turn domain results into Dagster metadata."""

from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue


def counts_table(title: str, counts: Mapping[str, int]) -> MetadataValue:
    """A two-column markdown table (rendered as a table in the UI)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items()) or "| (none) | 0 |"
    return MetadataValue.md(f"| {title} | rows |\n|---|---:|\n{rows}")


def jsonable(value: Any) -> MetadataValue:
    return MetadataValue.json(value)
