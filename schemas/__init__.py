"""Schemas of every artifact: pandera models (tables) and the JSON Schema of the exported record."""

from safetygraph.location.schemas.models import (
    AuditedRecord,
    GeneratedRecord,
    LabeledRecord,
    PreferencePairRecord,
    QuarantineRecord,
    RawRecord,
    RefusalSplitRecord,
    ShardRecord,
    SplitRecord,
    validate_table,
)

__all__ = [
    "AuditedRecord",
    "GeneratedRecord",
    "LabeledRecord",
    "PreferencePairRecord",
    "QuarantineRecord",
    "RawRecord",
    "RefusalSplitRecord",
    "ShardRecord",
    "SplitRecord",
    "validate_table",
]
