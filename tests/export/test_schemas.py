"""The JSON Schema in schemas/ stays in sync with the tables and the pandera models."""

import json
from pathlib import Path

import jsonschema
import pyarrow as pa
from safetygraph.location.schemas import (
    AuditedRecord,
    GeneratedRecord,
    LabeledRecord,
    RawRecord,
    ShardRecord,
    SplitRecord,
    validate_table,
)
from safetygraph.location.schemas.jsonschema import GROUPS, canonical_record_schema

from safetygraph.core.records import (
    AUDITED_SCHEMA,
    GENERATED_SCHEMA,
    LABELED_SCHEMA,
    RAW_SCHEMA,
    SHARD_SCHEMA,
    SPLIT_SCHEMA,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "canonical_record.schema.json"


def test_committed_json_schema_is_the_generated_one():
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == canonical_record_schema(), (
        "regenerate: python -m safetygraph.location.schemas.jsonschema > schemas/canonical_record.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(committed)


def test_pandera_models_name_exactly_the_arrow_columns():
    for model, schema in [
        (RawRecord, RAW_SCHEMA),
        (GeneratedRecord, GENERATED_SCHEMA),
        (LabeledRecord, LABELED_SCHEMA),
        (AuditedRecord, AUDITED_SCHEMA),
        (ShardRecord, SHARD_SCHEMA),
        (SplitRecord, SPLIT_SCHEMA),
    ]:
        assert list(model.to_schema().columns) == schema.names, model.__name__


def test_json_schema_covers_every_exported_column():
    props = canonical_record_schema()["properties"]
    grouped = {c for g in GROUPS.values() for c in g.values()}
    top = set(props) - set(GROUPS)
    assert top | grouped == set(SPLIT_SCHEMA.names) - {"generation_error"}


def test_pandera_rejects_bad_rows():
    good = {
        "id": "a" * 24,
        "source": "s",
        "source_ref": "f:1",
        "tools": None,
        "prompt": "hi",
        "response": None,
        "tags": ["benign"],
        "category": None,
        "meta": None,
        "messages": [
            {
                "role": "user",
                "content": "hi",
                "tool_calls": None,
                "tool_call_id": None,
                "name": None,
            }
        ],
    }
    bad_role = {
        **good,
        "messages": [
            {
                "role": "wizard",
                "content": "hi",
                "tool_calls": None,
                "tool_call_id": None,
                "name": None,
            }
        ],
    }
    bad_tools = {**good, "tools": "{not json"}
    table = pa.Table.from_pylist([good, bad_role, bad_tools], schema=RAW_SCHEMA)
    failures = {f["check"]: f["count"] for f in validate_table(RawRecord, table)}
    assert failures == {"messages_well_formed": 1, "tools_is_json": 1}
