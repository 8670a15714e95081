"""Circuit-breaker stage 2: the harmful set (Ds) and the retain set (Dr) cut from the merged rows
(``shards.py``), strict format validation (``validation.py``), the tokenizer preflight against the
target chat template (``preflight.py``), the merged set streamed with over-length rows left out
(``stage2.py``) and the files the training plan reads (``files.py``)."""

from safetygraph.recipes.circuit_breaker.files import STAGE2_ROOT, write_files
from safetygraph.recipes.circuit_breaker.shards import (
    CANDIDATE_TAG,
    HARMFUL_KINDS,
    RETAIN_KINDS,
    ShardCut,
    attack_outcome_counts,
    attack_outcome_sql,
    cut_shards,
    downsample_retain,
    samples,
    stats,
    tools_missing,
)
from safetygraph.recipes.circuit_breaker.stage2 import Stage2Stream
from safetygraph.recipes.circuit_breaker.validation import (
    RULES,
    VALIDATION_SCHEMA,
    validate,
    validation_summary,
)

__all__ = [
    "CANDIDATE_TAG",
    "HARMFUL_KINDS",
    "RETAIN_KINDS",
    "RULES",
    "STAGE2_ROOT",
    "VALIDATION_SCHEMA",
    "attack_outcome_counts",
    "attack_outcome_sql",
    "ShardCut",
    "Stage2Stream",
    "cut_shards",
    "downsample_retain",
    "samples",
    "stats",
    "tools_missing",
    "validate",
    "validation_summary",
    "write_files",
]
