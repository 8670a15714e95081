"""The whole graph in process: the demo build, and every blocking gate failing on crafted data with
its downstream assets skipped."""

import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pytest
import yaml
from dagster import AssetKey, Definitions, asset, instance_for_test, materialize
from safetygraph.location.checks import dataset_checks
from safetygraph.location.checks.factories import schema_check, unique_ids_check
from safetygraph.location.pipeline_assets.keys import EVAL_SPLIT, REFUSAL_DATASET, TRAIN_SPLIT
from safetygraph.location.resources import BuildConfig, LLMResource, ParquetIOManager
from safetygraph.location.schemas import SplitRecord

from safetygraph.core.storage import Storage
from safetygraph.export.files import verify_export
from safetygraph.location import definitions
from tests.conftest import REPO, demo_sources_copy, write_registry

PER_SOURCE = ["raw_samples", "raw_quarantine", "generated_responses", "labels", "audited"]
DATASETS = [
    "judge_quality",
    "eval_prompts",
    "dataset_decontamination",
    "refusal_dataset",
    "harmful_shard",
    "retain_shard",
    "review_sample",
    "refusal_train",
    "refusal_eval",
    "stage2_samples",
    "stage2_stats",
    "validation_report",
    "train_split",
    "eval_split",
    "stage2_files",
    "qa_report",
    "export",
]
# the merge writes the refusal dataset and its decontamination table, from the evaluation sets
MERGE = {"judge_quality", "eval_prompts", "dataset_decontamination", "refusal_dataset"}
SHARDS = MERGE | {"harmful_shard", "retain_shard", "review_sample"}
STAGE2_GATES = SHARDS | {"stage2_samples"}  # a gate on stage2_samples skips all below it
STAGE2 = STAGE2_GATES | {"stage2_stats", "validation_report"}
# the refusal recipe below the merge: a circuit-breaker gate does not stop it
REFUSAL = {"refusal_train", "refusal_eval", "qa_report", "export"}


class Build:
    """A registry, profiles file, storage and instance in a temp folder, and helpers to run jobs."""

    def __init__(self, folder: Path, instance, extra_sources=(), thresholds=None):
        self.folder = folder
        self.instance = instance
        self.sources = demo_sources_copy(folder) + list(extra_sources)
        self.registry, self.profiles = write_registry(
            folder / "config", self.sources, thresholds=thresholds
        )
        self.base = str(folder / "data")

    def defs(self, thresholds: dict | None = None) -> Definitions:
        profiles = self.profiles
        if thresholds:
            body = yaml.safe_load(profiles.read_text())
            body["profiles"]["test"]["thresholds"].update(thresholds)
            profiles = (
                self.folder
                / "config"
                / f"profiles-{abs(hash(json.dumps(thresholds, sort_keys=True)))}.yaml"
            )
            profiles.write_text(yaml.safe_dump(body))
        settings = BuildConfig(
            profile="test",
            registry_path=str(self.registry),
            profiles_path=str(profiles),
            base_uri=self.base,
        )
        return definitions.build_defs(
            settings,
            LLMResource(recordings=[str(REPO / "sample_data" / "recorded_responses.jsonl")]),
        )

    def run_source(self, name: str, defs: Definitions | None = None):
        job = (defs or self.defs()).resolve_job_def(definitions.SOURCE_JOB)
        return job.execute_in_process(
            partition_key=name, instance=self.instance, raise_on_error=False
        )

    def run_datasets(self, defs: Definitions | None = None, run_config=None):
        job = (defs or self.defs()).resolve_job_def(definitions.DATASET_JOB)
        return job.execute_in_process(
            instance=self.instance, raise_on_error=False, run_config=run_config
        )


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def check_results(result) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with instance_for_test() as instance:
        build = Build(tmp_path_factory.mktemp("demo"), instance)
        results = {s["name"]: build.run_source(s["name"]) for s in build.sources}
        yield build, results


def test_demo_materializes_every_asset_and_passes_every_check(demo):
    build, results = demo
    for name, result in results.items():
        assert result.success, name
        assert materialized(result) == set(PER_SOURCE)
        assert all(check_results(result).values()) and len(check_results(result)) == 10
    result = build.run_datasets()
    assert result.success
    assert materialized(result) == set(DATASETS)
    checks = check_results(result)
    assert all(checks.values()) and len(checks) == 37
    storage = Storage(build.base)
    build_id = storage.read_bytes("exports", "LATEST").decode()
    assert verify_export(storage, build_id) == []
    manifest = json.loads(storage.read_bytes("exports", build_id, "manifest.json"))
    files = {f["path"]: f for f in manifest["files"]}
    assert files["train.jsonl"]["rows"] + files["eval.jsonl"]["rows"] == sum(
        manifest["rows_per_source"]["train"].values()
    ) + sum(manifest["rows_per_source"]["eval"].values())
    assert set(manifest["rows_per_source"]["refusal_dataset"]) == {s["name"] for s in build.sources}
    assert (
        manifest["config_lock"]["profile"] == "test"
        and len(manifest["config_lock"]["config_hash"]) == 64
    )
    schema = json.loads((REPO / "schemas" / "canonical_record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    with storage.fs.open(storage.path("exports", build_id, "train.jsonl")) as f:
        for line in f:
            validator.validate(json.loads(line))
    # the quarantine of the clean demo is empty, and the duplicates in the benign sample were removed
    audited = storage.read_table("assets", "audited", "demo_benign_prompts.parquet")
    raw = storage.read_table("assets", "raw_samples", "demo_benign_prompts.parquet")
    assert raw.num_rows - audited.num_rows == 2


def _bad_source(folder: Path, name: str, lines: list[bytes], mapping=None) -> dict:
    f = folder / f"{name}.jsonl"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"\n".join(lines) + (b"\n" if lines else b""))
    return {
        "name": name,
        "kind": "local",
        "location": {"path": str(f)},
        "format": "jsonl",
        "mapping": mapping or {"prompt": "prompt", "response": "response"},
        "roles": ["benign"],
    }


def test_quarantine_rate_blocks_the_source_and_the_merge_reports_it(tmp_path):
    good = [
        json.dumps({"prompt": f"question {i}?", "response": f"Here is answer {i}."}).encode()
        for i in range(3)
    ]
    bad = [
        b'{"prompt": "truncated',
        json.dumps({"response": "no prompt"}).encode(),
        b'{"prompt": "\xff\xfe"}',
    ]
    with instance_for_test() as instance:
        build = Build(
            tmp_path,
            instance,
            extra_sources=[_bad_source(tmp_path / "in", "crafted_bad", good + bad)],
        )
        result = build.run_source("crafted_bad")
        assert not result.success
        assert check_results(result)["raw_samples:quarantine_rate"] is False
        assert materialized(result) == {
            "raw_samples",
            "raw_quarantine",
        }  # generation, labels, audit skipped
        quarantine = (
            Storage(build.base)
            .read_table("assets", "raw_quarantine", "crafted_bad.parquet")
            .to_pylist()
        )
        assert [(q["line"], q["reason"].split(":")[0]) for q in quarantine] == [
            (4, "malformed JSON"),
            (5, "missing mapped field"),
            (6, "not valid UTF-8"),
        ]
        assert (
            Storage(build.base).read_table("assets", "raw_samples", "crafted_bad.parquet").num_rows
            == 3
        )

        for s in build.sources[:-1]:
            assert build.run_source(s["name"]).success
        merged = build.run_datasets()
        assert not merged.success and materialized(merged) == {"judge_quality", "eval_prompts"}
        failure = merged.get_step_failure_events()[0].event_specific_data.error.message
        assert (
            "crafted_bad is blocked (blocking check failed: raw_samples:quarantine_rate)" in failure
        )

        partial = build.run_datasets(
            run_config={"ops": {"refusal_merge": {"config": {"allow_partial": True}}}}
        )
        assert "refusal_dataset" in materialized(partial)
        mat = [
            e
            for e in partial.get_asset_materialization_events()
            if e.asset_key == AssetKey("refusal_dataset")
        ][0]
        assert mat.materialization.metadata["excluded_sources"].value == ["crafted_bad"]
        merged_sources = set(
            Storage(build.base)
            .read_table("assets", "refusal_dataset.parquet")
            .column("source")
            .to_pylist()
        )
        assert "crafted_bad" not in merged_sources and len(merged_sources) == 6


def test_empty_source_fails_naming_its_file_and_unanswered_prompts_fail_generation(tmp_path):
    unrecorded = [json.dumps({"prompt": f"never recorded {i}"}).encode() for i in range(3)]
    with instance_for_test() as instance:
        build = Build(
            tmp_path,
            instance,
            extra_sources=[
                _bad_source(tmp_path / "in", "empty", []),
                _bad_source(tmp_path / "in", "unanswered", unrecorded, {"prompt": "prompt"}),
            ],
        )
        empty = build.run_source("empty")
        assert not empty.success and materialized(empty) == set()
        message = empty.get_step_failure_events()[0].event_specific_data.error.message
        assert (
            "source 'empty'" in message and "is empty" in message and "fix location.path" in message
        )
        unanswered = build.run_source("unanswered")
        assert check_results(unanswered)["generated_responses:generation_errors"] is False
        assert materialized(unanswered) == {"raw_samples", "raw_quarantine", "generated_responses"}


def test_missing_source_file_fails_with_one_clear_message(tmp_path):
    missing = {
        "name": "ghost",
        "kind": "local",
        "location": {"path": str(tmp_path / "nowhere.jsonl")},
        "format": "jsonl",
        "mapping": {"prompt": "p"},
    }
    with instance_for_test() as instance:
        build = Build(tmp_path, instance, extra_sources=[missing])
        result = build.run_source("ghost")
        assert not result.success and materialized(result) == set()
        message = result.get_step_failure_events()[0].event_specific_data.error.message
        assert (
            "source 'ghost'" in message and "nowhere.jsonl" in message and "fix location" in message
        )


@pytest.mark.parametrize(
    ("thresholds", "failed_check", "expected"),
    [
        (
            {"judge_floors": {"refusal_accuracy": 0.999}},
            "judge_quality:judge_meets_floors",
            {"judge_quality", "eval_prompts"},
        ),
        (
            {"coverage_min": {"REFUSAL.PARTIAL": 1000}},
            "refusal_dataset:coverage_minimums",
            MERGE,
        ),
        (
            {"confidence_floor": 0.99},
            "refusal_dataset:confidence_floor",
            MERGE,
        ),
        (
            {"refusal_min_rows": 10**6},
            "refusal_dataset:refusal_dataset_min_rows",
            MERGE,
        ),
        ({"harmful_min": 10**6}, "harmful_shard:harmful_shard_min_rows", SHARDS | REFUSAL),
        (
            {"retain_harmful_ratio_min": 100.0},
            "stage2_samples:dr_ds_ratio",
            STAGE2_GATES | REFUSAL,
        ),
        (
            {"adversarial_safe_min": 400},
            "stage2_samples:adversarial_safe_count",
            STAGE2_GATES | REFUSAL,
        ),
        ({"max_seq_length": 64}, "stage2_samples:tokenizer_preflight", STAGE2_GATES | REFUSAL),
        (
            {"train_min": 5000},
            "train_split:train_split_min_rows",
            STAGE2 | {"train_split", "eval_split"} | REFUSAL,
        ),
        (
            {"eval_min": 10**6},
            "eval_split:eval_split_min_rows",
            STAGE2 | {"train_split", "eval_split"} | REFUSAL,
        ),
        (
            {"qa": {"min_mean_confidence": 0.99}},
            "qa_report:qa_thresholds",
            set(DATASETS) - {"export"},  # stage2_files is not downstream of the refusal QA report
        ),
    ],
)
def test_each_dataset_gate_blocks_everything_downstream(demo, thresholds, failed_check, expected):
    build, _ = demo
    result = build.run_datasets(build.defs(thresholds))
    assert not result.success
    checks = check_results(result)
    assert checks[failed_check] is False
    assert [k for k, ok in checks.items() if not ok] == [failed_check]
    assert materialized(result) == expected
    # each recipe's files only below its own gates: a gate on the merge stops both recipes' files,
    # a circuit-breaker gate only the stage-2 files, the refusal QA gate only the export
    assert ("stage2_files" in materialized(result)) == (failed_check == "qa_report:qa_thresholds")
    assert ("export" in materialized(result)) == failed_check.startswith(
        ("harmful_shard", "stage2_samples", "train_split", "eval_split")
    )


def _split_rows(
    n: int, prompt_hash=lambda i: f"{i:064x}", outcome="COMPLY.BENIGN", split="train", ids=None
):
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": (ids or [f"{i:024d}" for i in range(n)])[i],
                "source": "s",
                "source_ref": f"f:{i}",
                "messages": [
                    {
                        "role": "user",
                        "content": "q",
                        "tool_calls": None,
                        "tool_call_id": None,
                        "name": None,
                    },
                    {
                        "role": "assistant",
                        "content": "a",
                        "tool_calls": None,
                        "tool_call_id": None,
                        "name": None,
                    },
                ],
                "tools": None,
                "prompt": "q",
                "response": "a",
                "tags": [],
                "category": None,
                "meta": None,
                "generation_model": None,
                "generation_backend": "source",
                "generation_params": None,
                "request_hash": None,
                "generation_error": None,
                "label_outcome": outcome,
                "label_style": "DIRECT_ANSWER",
                "harm_categories": [],
                "harmless_topics": [],
                "prompt_harmful": False,
                "response_harmful": False,
                "response_refusal": False,
                "response_attempted": False,
                "label_confidence": 0.9,
                "label_rationale": "r",
                "judge": "j",
                "content_hash": f"{i:064x}",
                "prompt_hash": prompt_hash(i),
                "pii_types": [],
                "pii_count": 0,
                "toxicity": 0.0,
                "cb_class": "retain",
                "cb_kind": "benign_answer",
                "is_adversarial_safe": False,
                "split": split,
            }
        )
    from safetygraph.core.records import SPLIT_SCHEMA

    return pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA)


def _crafted_run(tmp_path, assets_and_checks):
    @asset(deps=[EVAL_SPLIT, TRAIN_SPLIT, REFUSAL_DATASET])
    def downstream() -> None:
        return None

    settings = BuildConfig(base_uri=str(tmp_path))
    return materialize(
        [*assets_and_checks, downstream],
        resources={"settings": settings, "io_manager": ParquetIOManager(base_uri=str(tmp_path))},
        raise_on_error=False,
    )


def test_leakage_duplicate_ids_and_schema_gates_fail_on_crafted_tables(tmp_path):
    leak = {c.check_specs and next(iter(c.check_specs)).name: c for c in dataset_checks()}

    @asset(name="train_split")
    def train() -> pa.Table:
        return _split_rows(5)

    @asset(name="eval_split")
    def evals() -> pa.Table:
        return _split_rows(
            2, prompt_hash=lambda i: f"{i:064x}", split="eval", ids=["e" * 24, "f" * 24]
        )  # same prompts as train rows 0, 1

    @asset(name="refusal_dataset")
    def refusal() -> pa.Table:
        return _split_rows(3, ids=["dup" + "0" * 21] * 3)

    result = _crafted_run(
        tmp_path,
        [train, evals, refusal, leak["no_train_eval_leakage"], unique_ids_check(REFUSAL_DATASET)],
    )
    checks = check_results(result)
    assert checks == {
        "eval_split:no_train_eval_leakage": False,
        "refusal_dataset:refusal_dataset_unique_ids": False,
    }
    assert "downstream" not in materialized(result)

    @asset(name="train_split")
    def bad_train() -> pa.Table:
        return _split_rows(3, outcome="MAYBE")

    result = _crafted_run(tmp_path, [bad_train, schema_check(TRAIN_SPLIT, SplitRecord)])
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed and "downstream" not in materialized(result)
    assert any(f["column"] == "label_outcome" for f in evaluation.metadata["failures"].value)


def test_rerunning_a_partition_answers_from_the_cache(demo):
    build, _ = demo
    result = build.run_source("demo_harmful_prompts")
    assert result.success
    mat = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey("generated_responses")
    ][0]
    meta = mat.materialization.metadata
    assert (
        meta["cache_hits"].value == 40
        and meta["called"].value == 0
        and meta["generated"].value == 40
    )


def test_openai_generation_through_the_asset_keeps_the_api_key_secret(tmp_path, monkeypatch):
    from tests.fake_openai import FakeOpenAI

    secret = "sk-live-abcdef0123456789"
    prompts = [json.dumps({"prompt": f"what is {i} plus {i}?"}).encode() for i in range(5)]
    with FakeOpenAI() as server, instance_for_test() as instance:
        monkeypatch.setenv("SAFETYGRAPH_LLM_API_KEY", secret)
        monkeypatch.setenv("SAFETYGRAPH_OPENAI_BASE_URL", server.url)
        build = Build(
            tmp_path,
            instance,
            extra_sources=[
                _bad_source(tmp_path / "in", "api_prompts", prompts, {"prompt": "prompt"})
            ],
        )
        body = yaml.safe_load(build.profiles.read_text())
        body["profiles"]["test"]["generation"] = {
            "configs": {"target": {"backend": "openai", "model": "served-model"}}
        }
        build.profiles.write_text(yaml.safe_dump(body))
        settings = BuildConfig(
            profile="test",
            registry_path=str(build.registry),
            profiles_path=str(build.profiles),
            base_uri=build.base,
        )
        defs = definitions.build_defs(settings, definitions.default_llm())
        result = build.run_source("api_prompts", defs)
        assert result.success
        assert set(server.auth_headers) == {f"Bearer {secret}"} and sum(server.calls.values()) == 5
        logs = "\n".join(str(record) for record in instance.all_logs(result.run_id))
        assert secret not in logs and "served-model" in logs
        stored = Storage(build.base)
        for name in stored.listdir("cache", "requests"):
            assert secret.encode() not in stored.read_bytes("cache", "requests", name)


def test_seed_compatible_files_load_as_the_seed_loader_reads_them(demo):
    """The rejection-detection system's users: json.load of final_dataset.json, one JSON object per
    line of final_dataset.jsonl, audit/audit_report.json and audit/human_review_samples.json."""
    build, _ = demo
    result = build.run_datasets()
    assert result.success
    storage = Storage(build.base)
    build_id = storage.read_bytes("exports", "LATEST").decode()
    root = Path(build.base) / "exports" / build_id
    records = json.loads((root / "processed" / "final_dataset.json").read_text())
    lines = [
        json.loads(x) for x in (root / "processed" / "final_dataset.jsonl").read_text().splitlines()
    ]
    dataset = storage.read_table("assets", "refusal_dataset.parquet")
    assert records == lines and len(records) == dataset.num_rows
    heads = {"head_a", "head_b", "head_c_a", "head_c_b", "head_d", "metadata"}
    for r in records:
        assert heads <= set(r) and set(r["head_d"]) == {
            "prompt_harmful",
            "response_harmful",
            "response_refusal",
        }
        assert set(r["metadata"]) == {"confidence", "rationale", "judge_model"}
        assert isinstance(r["head_c_a"], list) and isinstance(r["head_d"]["response_refusal"], bool)
    by_id = {r["id"]: r for r in records}
    for row in dataset.slice(0, 20).to_pylist():
        assert by_id[row["id"]]["head_a"] == row["label_outcome"]
        assert by_id[row["id"]]["metadata"]["confidence"] == row["label_confidence"]
    report = json.loads((root / "audit" / "audit_report.json").read_text())
    assert report["total_samples"] == dataset.num_rows
    assert sum(report["distributions"]["head_a"].values()) == dataset.num_rows
    assert {"quality_metrics", "coverage", "recommendations", "qa_checks"} <= set(report)
    samples = json.loads((root / "audit" / "human_review_samples.json").read_text())
    review = storage.read_table("assets", "review_sample.parquet")
    assert [s["id"] for s in samples] == review.column("id").to_pylist() and samples
    # listed in the manifest, so `safetygraph verify` covers them
    manifest = json.loads((root / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {
        "processed/final_dataset.json",
        "processed/final_dataset.jsonl",
        "audit/audit_report.json",
        "audit/human_review_samples.json",
        "processed/dataset_info.json",
    } <= paths


def test_no_stored_asset_has_a_column_of_type_null(demo):
    """Every column of every stored table is typed (an all-null column keeps its type), so a reader
    never meets a NULL-typed column."""
    import pyarrow.parquet as pq

    build, _ = demo
    build.run_datasets()
    files = sorted((Path(build.base) / "assets").rglob("*.parquet"))
    assert len(files) > 10
    untyped = {
        f"{f.relative_to(build.base)}:{field.name}"
        for f in files
        for field in pq.read_schema(f)
        if pa.types.is_null(field.type)
    }
    assert untyped == set()


def test_judge_quality_measures_the_judge_on_human_labels(demo):
    build, _ = demo
    result = build.run_datasets()
    mat = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey("judge_quality")
    ][0]
    assert (
        mat.materialization.metadata["gold_rows"].value == 43
    )  # demo_pairs carries gold_refusal / gold_harmful
    metrics = Storage(build.base).read_table("assets", "judge_quality.parquet").to_pylist()
    acc = {(m["task"], m["method"]): m["value"] for m in metrics if m["metric"] == "accuracy"}
    assert acc[("refusal", "judge")] > acc[("refusal", "baseline")]
    # response harm: every judge beside the old rule, with the false-positive rate
    harm = {(m["method"], m["metric"]) for m in metrics if m["task"] == "response_harm"}
    assert {("judge", "fpr"), ("combined", "precision"), ("rule", "recall")} <= harm
    assert "false-positive rate" in mat.materialization.metadata["metrics"].value


def label_demo_pairs_with(tmp_path, monkeypatch, base_url: str, judge: str):
    """demo_pairs through the source job with ``judge`` chosen in the launchpad, the model server
    at ``base_url``: (the run's result, the stored labels)."""
    monkeypatch.setenv("SAFETYGRAPH_OPENAI_BASE_URL", base_url)
    with instance_for_test() as instance:
        build = Build(tmp_path, instance)
        settings = BuildConfig(
            profile="test",
            registry_path=str(build.registry),
            profiles_path=str(build.profiles),
            base_uri=build.base,
        )
        job = definitions.build_defs(settings, definitions.default_llm()).resolve_job_def(
            definitions.SOURCE_JOB
        )
        result = job.execute_in_process(
            partition_key="demo_pairs",
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"labels": {"config": {"judge": judge}}}},
        )
        return result, Storage(build.base).read_table("assets", "labels", "demo_pairs.parquet")


def test_labels_with_the_llm_judge_from_the_launchpad(tmp_path, monkeypatch):
    from tests.fake_openai import FakeOpenAI
    from tests.labeling.test_llm_judge import GOOD

    with FakeOpenAI(responder=lambda body: json.dumps(GOOD)) as server:
        result, labels = label_demo_pairs_with(tmp_path, monkeypatch, server.url, "llm")
        assert result.success
        assert (
            set(labels.column("judge").to_pylist()) == {"llm:judge-model"} and labels.num_rows == 43
        )
        assert sum(server.calls.values()) == 43 and server.bodies[0]["model"] == "judge-model"
