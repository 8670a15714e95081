"""Pandera models for each stage's table. Each stage's model extends the one before it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_
from pandera.errors import SchemaErrors
from pandera.typing import Series

from safetygraph.core.records import MESSAGE_ROLES
from safetygraph.core.tables import StoredTable, table_batches
from safetygraph.labeling.constitution import COMPLY_STYLES, OUTCOMES, REFUSAL_STYLES
from safetygraph.recipes.circuit_breaker.shards import HARMFUL_KINDS, RETAIN_KINDS
from safetygraph.recipes.preference.pairs import DROP_REASONS
from safetygraph.recipes.preference.pairs import MODES as PAIR_MODES

VALIDATE_BATCH_ROWS = 50_000


def _is_json(value: Any) -> bool:
    try:
        json.loads(value)
        return True
    except (TypeError, ValueError):
        return False


def _messages_ok(value: Any) -> bool:
    if value is None or len(value) == 0:
        return False
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in MESSAGE_ROLES:
            return False
        if m.get("content") is None and m.get("tool_calls") is None:
            return False
        if m.get("tool_calls") is not None and not _is_json(m["tool_calls"]):
            return False
    return True


class RawRecord(pa.DataFrameModel):
    """A canonical sample as ingested from its source."""

    id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 16})
    source: Series[str] = pa.Field(nullable=False)
    source_ref: Series[str] = pa.Field(nullable=False)
    messages: Series[object] = pa.Field(nullable=False)
    tools: Series[str] = pa.Field(nullable=True)
    prompt: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    response: Series[str] = pa.Field(nullable=True)
    tags: Series[object] = pa.Field(nullable=False)
    category: Series[str] = pa.Field(nullable=True)
    meta: Series[str] = pa.Field(nullable=True)

    @pa.check("messages", element_wise=True, name="messages_well_formed")
    def _messages(cls, value: Any) -> bool:
        return _messages_ok(value)

    @pa.check("tools", element_wise=True, name="tools_is_json", ignore_na=True)
    def _tools(cls, value: Any) -> bool:
        return _is_json(value)

    @pa.check("meta", element_wise=True, name="meta_is_json", ignore_na=True)
    def _meta(cls, value: Any) -> bool:
        return _is_json(value)

    class Config:
        strict = True
        ordered = True


class GeneratedRecord(RawRecord):
    generation_model: Series[str] = pa.Field(nullable=True)
    generation_backend: Series[str] = pa.Field(nullable=True)
    generation_role: Series[str] = pa.Field(nullable=True)
    generation_params: Series[str] = pa.Field(nullable=True)
    request_hash: Series[str] = pa.Field(
        nullable=True, str_length={"min_value": 64, "max_value": 64}
    )
    generation_error: Series[str] = pa.Field(nullable=True)


class LabeledRecord(GeneratedRecord):
    response: Series[str] = pa.Field(nullable=False)
    label_outcome: Series[str] = pa.Field(isin=list(OUTCOMES))
    label_style: Series[str] = pa.Field(isin=list(REFUSAL_STYLES + COMPLY_STYLES))
    harm_categories: Series[object] = pa.Field(nullable=False)
    harmless_topics: Series[object] = pa.Field(nullable=False)
    prompt_harmful: Series[bool] = pa.Field(nullable=False)
    response_harmful: Series[bool] = pa.Field(nullable=False)
    response_refusal: Series[bool] = pa.Field(nullable=False)
    response_attempted: Series[bool] = pa.Field(nullable=False)
    label_confidence: Series[float] = pa.Field(ge=0.0, le=1.0)
    label_rationale: Series[str] = pa.Field(str_length={"min_value": 1})
    judge: Series[str] = pa.Field(nullable=False)

    @pa.dataframe_check(name="refusal_outcome_agrees_with_flag")
    def _outcome_vs_flag(cls, df: pd.DataFrame) -> Series[bool]:
        return df["label_outcome"].str.startswith("REFUSAL") == df["response_refusal"]

    @pa.dataframe_check(name="unsafe_outcome_implies_harmful_response")
    def _unsafe(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["label_outcome"] != "COMPLY.UNSAFE") | df["response_harmful"]

    @pa.dataframe_check(name="attempted_compliance_is_neither_harm_nor_refusal")
    def _attempted(cls, df: pd.DataFrame) -> Series[bool]:
        return ~df["response_attempted"] | ~(df["response_harmful"] | df["response_refusal"])


class AuditedRecord(LabeledRecord):
    content_hash: Series[str] = pa.Field(str_length={"min_value": 64, "max_value": 64})
    prompt_hash: Series[str] = pa.Field(str_length={"min_value": 64, "max_value": 64})
    pii_types: Series[object] = pa.Field(nullable=False)
    pii_count: Series[np.int32] = pa.Field(ge=0)
    toxicity: Series[float] = pa.Field(ge=0.0, le=1.0)


class ShardRecord(AuditedRecord):
    cb_class: Series[str] = pa.Field(isin=["harmful", "retain"])
    cb_kind: Series[str] = pa.Field(isin=list(HARMFUL_KINDS + RETAIN_KINDS))
    is_adversarial_safe: Series[bool] = pa.Field(nullable=False)


class SplitRecord(ShardRecord):
    split: Series[str] = pa.Field(isin=["train", "eval"])


class RefusalSplitRecord(AuditedRecord):
    """A row of the refusal recipe's own train/eval split."""

    split: Series[str] = pa.Field(isin=["train", "eval"])


class QuarantineRecord(pa.DataFrameModel):
    source: Series[str]
    file: Series[str]
    line: Series[int] = pa.Field(ge=1)
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    raw: Series[str]

    class Config:
        strict = True


class PreferencePairRecord(pa.DataFrameModel):
    """A candidate preference pair (recipes/preference/pairs.py): both sides with their judge labels,
    and why it was dropped (null when it is usable)."""

    id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 16})
    source: Series[str] = pa.Field(nullable=False)
    source_ref: Series[str] = pa.Field(nullable=False)
    prompt_id: Series[str] = pa.Field(nullable=False)
    mode: Series[str] = pa.Field(nullable=False, isin=list(PAIR_MODES))
    prompt_messages: Series[object] = pa.Field(nullable=False)
    prompt: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    prompt_hash: Series[str] = pa.Field(
        nullable=False, str_length={"min_value": 64, "max_value": 64}
    )
    category: Series[str] = pa.Field(nullable=False, str_matches=r"^[a-z0-9_]+$")
    chosen_text: Series[str] = pa.Field(nullable=True)
    rejected_text: Series[str] = pa.Field(nullable=True)
    chosen_outcome: Series[str] = pa.Field(nullable=True, isin=[*OUTCOMES, "NO_RESPONSE"])
    rejected_outcome: Series[str] = pa.Field(nullable=True, isin=[*OUTCOMES, "NO_RESPONSE"])
    drop_reason: Series[str] = pa.Field(nullable=True, isin=list(DROP_REASONS))

    @pa.check("prompt_messages", element_wise=True, name="prompt_messages_well_formed")
    def _prompt_messages(cls, value: Any) -> bool:
        return _messages_ok(value)

    @pa.dataframe_check(name="usable_pairs_have_both_sides_and_end_with_the_user")
    def _usable(cls, df: pd.DataFrame) -> Series[bool]:
        usable = df["drop_reason"].isna()
        last_user = df["prompt_messages"].map(lambda m: len(m) > 0 and m[-1]["role"] == "user")
        return ~usable | (df["chosen_text"].notna() & df["rejected_text"].notna() & last_user)


def validate_table(
    model: type[pa.DataFrameModel], table: pyarrow_.Table | StoredTable, max_examples: int = 5
) -> list[dict[str, Any]]:
    """Validate an Arrow table (or a stored one, streamed from its file) batch by batch; returns
    failures grouped by (column, check). Memory is bounded by the batch, not the table."""
    failures: dict[tuple[str, str], dict[str, Any]] = {}
    for batch in table_batches(table, VALIDATE_BATCH_ROWS):
        df = batch.to_pandas()
        try:
            model.validate(df, lazy=True)
        except SchemaErrors as exc:
            for case in exc.failure_cases.to_dict("records"):
                key = (str(case.get("column")), str(case.get("check")))
                entry = failures.setdefault(
                    key, {"column": key[0], "check": key[1], "count": 0, "examples": []}
                )
                entry["count"] += 1
                if len(entry["examples"]) < max_examples:
                    entry["examples"].append(str(case.get("failure_case"))[:200])
    return list(failures.values())
