"""A snapshot of the asset graph (keys, deps, groups, partitions, checks), and Dagster's own validation.

A change to the graph shows up here: review it, then refresh with SNAPSHOT_UPDATE=1 pytest tests/platform/test_graph.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from safetygraph.location import definitions

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "asset_graph.json"
REPO = Path(__file__).resolve().parents[2]


def _partitioned_by(pdef) -> str | None:
    """Which partitioning: one partition per registry source, or one per trait."""
    if pdef is None:
        return None
    keys = set(pdef.get_partition_keys())
    settings = definitions.default_settings()
    if keys == set(settings.registry().names):
        return "source"
    if keys == set(settings.traits().names):
        return "trait"
    raise AssertionError(f"an asset partitioned by neither sources nor traits: {sorted(keys)[:5]}")


def graph_snapshot(defs) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        pdef = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitioned": pdef is not None,
            "partitioned_by": _partitioned_by(pdef),
            "kinds": sorted(node.kinds),
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {
            "blocking": spec.blocking,
            "partitioned": spec.partitions_def is not None,
            "additional_deps": sorted(d.asset_key.to_user_string() for d in spec.additional_deps),
        }
    pdefs = {graph.get(k).partitions_def for k in graph.get_all_asset_keys()} - {None}
    assert {_partitioned_by(p) for p in pdefs} == {"source", "trait"}, (
        "partitioned assets share the source partitioning, or the trait partitioning"
    )
    return {
        "assets": assets,
        "checks": checks,
        "partitions": sorted(definitions.default_settings().registry().names),
        "traits": sorted(definitions.default_settings().traits().names),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
    }


def test_asset_graph_matches_snapshot():
    snap = graph_snapshot(definitions.defs)
    if os.environ.get("SNAPSHOT_UPDATE") == "1":
        SNAPSHOT.write_text(json.dumps(snap, indent=2) + "\n")
    assert snap == json.loads(SNAPSHOT.read_text())


def test_graph_shape_guards_training_data():
    snap = graph_snapshot(definitions.defs)
    # every source in the registry is a partition, and the per-source chain is partitioned
    assert "xstest" in snap["partitions"] and "demo_attacks" in snap["partitions"]
    for name in ("raw_samples", "raw_quarantine", "generated_responses", "labels", "audited"):
        assert snap["assets"][name]["partitioned_by"] == "source"
    for name in ("trait_answers", "steering_pairs"):
        assert snap["assets"][name]["partitioned_by"] == "trait"
    assert "extroversion" in snap["traits"] and "psychopathy" in snap["traits"]
    # checks on partitioned assets are partitioned themselves
    for name, check in snap["checks"].items():
        assert check["partitioned"] == snap["assets"][name.split(":")[0]]["partitioned"], name

    def upstream(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for dep in snap["assets"][todo.pop()]["deps"]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    # the export is downstream of every training-data gate
    for gate in (
        "stage2_samples:dr_ds_ratio",
        "stage2_samples:adversarial_safe_count",
        "stage2_samples:tools_carried",
        "stage2_samples:tokenizer_preflight",
        "stage2_samples:stage2_samples_unique_ids",
        "validation_report:no_validation_errors",
        "harmful_shard:attack_outcome_recorded",
        "eval_split:no_train_eval_leakage",
        "train_split:train_split_min_rows",
        "qa_report:qa_thresholds",
        "refusal_eval:refusal_no_leakage",
        # no evaluation prompt in any recipe's training rows
        "refusal_train:no_eval_prompts_in_train",
        "train_split:no_eval_prompts_in_train",
        "preference_train:no_eval_prompts_in_train",
        "steering_pairs:no_eval_prompts_in_train",
    ):
        assert snap["checks"][gate]["blocking"], gate
    # every recipe's files are downstream of the evaluation sets and its decontamination
    for files, decont in (
        ("export", "dataset_decontamination"),
        ("stage2_files", "dataset_decontamination"),
        ("preference_files", "preference_decontamination"),
        ("steering_files", "steering_decontamination"),
    ):
        assert {"eval_prompts", decont} <= upstream(files), files
    # the refusal export reads the refusal recipe's own split, not the circuit breaker's
    assert snap["assets"]["export"]["deps"] == [
        "dataset_decontamination",  # its counts, in the manifest and the card
        "judge_quality",  # the judge's measured quality, in the card
        "qa_report",
        "refusal_dataset",
        "refusal_eval",
        "refusal_train",
        "review_sample",  # the seed-compatible human_review_samples.json
    ]

    # each recipe's files are gated only by its own checks and its inputs': no recipe's files
    # wait on another recipe's assets
    groups = {k: a["group"] for k, a in snap["assets"].items()}
    files = {
        "export": {"export", "datasets"},
        "stage2_files": {"circuit_breaker"},
        "preference_files": {"preference"},
        "steering_files": {"steering"},
    }
    recipe_groups = {"circuit_breaker", "preference", "steering", "export"}
    for asset, own in files.items():
        foreign = {d for d in upstream(asset) if groups[d] in recipe_groups - own}
        assert not foreign, (asset, foreign)
    # the stage-2 files are written only downstream of the stage-2 gates
    assert snap["assets"]["stage2_files"]["deps"] == [
        "dataset_decontamination",
        "eval_split",
        "harmful_shard",
        "judge_quality",
        "retain_shard",
        "stage2_samples",
        "train_split",
        "validation_report",
    ]
    assert "validation_report" in snap["assets"]["train_split"]["deps"]
    assert AssetKey("export") in definitions.defs.resolve_asset_graph().get_all_asset_keys()


def test_dagster_definitions_validate():
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": ""},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
