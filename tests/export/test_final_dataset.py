"""The rejection-detection system's final_dataset rows carry their side of the refusal split and
whether they come from an evaluation-only set (issue 33, S0): a loader can keep them out of training."""

import json

import pyarrow as pa

from safetygraph.export.seed_compat import final_records


def _table(rows):
    base = {
        "prompt": "p",
        "response": "r",
        "label_outcome": "COMPLY.BENIGN",
        "label_style": "direct",
        "harm_categories": [],
        "harmless_topics": [],
        "prompt_harmful": False,
        "response_harmful": False,
        "response_refusal": False,
        "label_confidence": 0.9,
        "label_rationale": "why",
        "judge": "combined",
    }
    return pa.Table.from_pylist([{**base, **r} for r in rows])


def test_each_record_names_its_split_and_eval_only_source():
    table = _table(
        [
            {"id": "a", "source": "demo_pairs"},
            {"id": "b", "source": "xstest"},
            {"id": "c", "source": "demo_pairs"},
        ]
    )
    train = pa.table({"id": ["a"]})
    evals = pa.table({"id": ["b", "c"]})
    records = [json.loads(r) for r in final_records(table, train, evals, ("xstest",))]
    got = {r["id"]: (r["split"], r["eval_only"]) for r in records}
    assert got == {"a": ("train", False), "b": ("eval", True), "c": ("eval", False)}
    assert {"head_a", "head_d", "metadata"} <= set(records[0])  # the seed's fields stay
    plain = [json.loads(r) for r in final_records(table)]
    assert all(r["split"] is None and r["eval_only"] is False for r in plain)
