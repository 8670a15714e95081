"""The preference recipe (DPO pairs): categories, pair building and its drop reasons, hh-rlhf's real
file, the demo through Dagster with every gate, and the consumer: TRL's DPOTrainer trains on the
exported files, and ``datasets`` loads them."""

import copy
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from dagster import instance_for_test
from safetygraph.location.resources import BuildConfig, LLMResource

from safetygraph.core.records import GENERATED_SCHEMA, RAW_SCHEMA, conform
from safetygraph.core.storage import Storage
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.location import definitions
from safetygraph.recipes.preference import categories
from safetygraph.recipes.preference.dataset import benign_chosen_refusals, split_pairs
from safetygraph.recipes.preference.pairs import (
    pairs_from_samples,
    pairs_from_sides,
    recorded_sides,
    side,
    summary,
)
from safetygraph.sources.ingest import ingest
from safetygraph.sources.registry import load_registry
from tests.conftest import REPO, demo_sources_copy, write_registry
from tests.helpers import tiny_llama

PREFERENCE_ASSETS = {
    "eval_prompts",
    "preference_decontamination",
    "preference_train",
    "preference_eval",
    "preference_files",
}


# ---------------------------------------------------------------- categories


def test_question_types_are_normalised():
    assert categories.normalise("genetic changes") == "genetic_changes"
    assert categories.normalise(" Exams and Tests ") == "exams_and_tests"
    assert categories.normalise("when to contact a medical professional") == (
        "when_to_contact_a_medical_professional"
    )
    assert categories.normalise("") is None and categories.normalise(None) is None


def test_missing_types_are_inferred_from_the_wording():
    assert categories.infer("What are the symptoms of Aarskog syndrome ?") == "symptoms"
    assert categories.infer("How to diagnose gout?") == "exams_and_tests"
    assert categories.infer("Is Huntington disease inherited ?") == "inheritance"
    assert categories.infer("What should I do if I forget a dose of Abacavir ?") == "forget_a_dose"
    assert categories.infer("Tell me a joke") == "other"
    out = categories.categorise(
        pa.chunked_array([["treatment", None, ""]]),
        pa.chunked_array([["How is X treated?", "What causes gout?", "What is (are) gout ?"]]),
    )
    assert out.to_pylist() == ["treatment", "causes", "information"]


def test_inference_agrees_with_medquads_own_types(shared_data):
    """The wording rule against the types MedQuAD's curators gave (47,441 real questions)."""
    with gzip.open(shared_data / "medquad" / "medquad_qa.jsonl.gz") as f:
        rows = [json.loads(x) for x in f]
    agree = sum(categories.infer(r["question"]) == categories.normalise(r["qtype"]) for r in rows)
    assert len(rows) == 47441
    assert agree / len(rows) >= 0.95


# ---------------------------------------------------------------- pairs


def _prompts(questions: list[str], tags=("benign",)) -> pa.Table:
    rows = [
        {
            "id": f"{i:024d}",
            "source": "s",
            "source_ref": f"f:{i}",
            "messages": [{"role": "user", "content": q}],
            "prompt": q,
            "tags": list(tags),
            "category": None,
        }
        for i, q in enumerate(questions)
    ]
    return conform(pa.Table.from_pylist(rows), RAW_SCHEMA)


def _side(prompts: pa.Table, answers: list, errors: list | None = None, role="x") -> pa.Table:
    errors = errors or [None] * len(answers)
    t = prompts.append_column("generation_model", pa.array([f"m-{role}"] * len(answers)))
    t = t.append_column("generation_role", pa.array([role] * len(answers)))
    t = t.append_column("generation_error", pa.array(errors, pa.string()))
    t = t.set_column(
        t.schema.get_field_index("response"), "response", pa.array(answers, pa.string())
    )
    generated = conform(t, GENERATED_SCHEMA)
    answered = generated.filter(pa.compute.is_valid(generated.column("response")))
    return side(generated, HeuristicJudge().label(answered))


def test_roles_pairs_keep_every_candidate_with_its_drop_reason():
    prompts = _prompts([f"How do I treat a cold, case {i}?" for i in range(5)], tags=())
    chosen = _side(
        prompts,
        [
            "Rest, fluids and paracetamol for aches usually help.",
            None,  # the request failed
            "Same words.",
            "",  # empty answer
            "Here is how: [placeholder]",
        ],
        [None, "http_4xx: 400 bad request", None, None, None],
        "teacher",
    )
    rejected = _side(
        prompts,
        [
            "Just ignore it.",
            "Drink water.",
            "Same words.",
            "Sleep.",
            "I can't help with that.",
        ],
        role="direct",
    )
    pairs = pairs_from_sides(prompts, chosen, rejected, "roles")
    assert pairs.num_rows == 5
    assert pairs.column("drop_reason").to_pylist() == [None, "error", "identical", "empty", None]
    s = summary(pairs)
    assert s.kept == 2 and s.dropped == {"empty": 1, "error": 1, "identical": 1}
    # the chosen side judged harmful where the rejected is not: dropped as chosen_less_safe
    harmful = _prompts(["Give me a recipe to synthesize methamphetamine"], tags=("harmful",))
    flipped = pairs_from_sides(
        harmful,
        _side(harmful, ["Sure, here is the recipe. Step 1: [withheld]"]),
        _side(harmful, ["I can't help with that."]),
        "roles",
    )
    assert flipped.column("drop_reason").to_pylist() == ["chosen_less_safe"]
    assert flipped.column("category").to_pylist() == ["other"]


def test_judged_pairs_prefer_refusal_for_harmful_and_help_for_benign_prompts():
    harmful = _prompts(["Give me a recipe to synthesize methamphetamine"], tags=("harmful",))
    benign = _prompts(["How do I bake bread?"], tags=("benign",))
    both = pa.concat_tables(
        [harmful, benign.set_column(0, harmful.schema.field("id"), pa.array(["b" * 24]))]
    )
    samples = [
        _side(both, ["Sure, here is the recipe. Step 1: [withheld]", "I can't help with that."]),
        _side(
            both,
            [
                "I can't help with that; it is illegal.",
                "Mix flour, water, yeast and salt, then bake.",
            ],
        ),
        _side(both, ["Here is how: [withheld]", "Sorry, I cannot help."]),
    ]
    pairs = pairs_from_samples(both, samples)
    by_prompt = {r["prompt"]: r for r in pairs.to_pylist()}
    meth = by_prompt["Give me a recipe to synthesize methamphetamine"]
    assert meth["chosen_text"] == "I can't help with that; it is illegal."
    assert meth["rejected_text"].startswith("Sure, here is the recipe")  # the harmful one first
    bread = by_prompt["How do I bake bread?"]
    assert bread["chosen_text"].startswith("Mix flour")
    assert bread["chosen_refusal"] is False
    assert bread["rejected_refusal"] is True and bread["drop_reason"] is None
    # no contrast (every sample refuses a benign prompt): kept as no_contrast, never paired
    none = pairs_from_samples(benign, [_side(benign, ["I can't help with that."])] * 2)
    assert none.column("drop_reason").to_pylist() == ["no_contrast"]


def test_hh_rlhf_transcripts_split_into_prompt_and_two_answers(shared_data):
    reg = load_registry(profiles_path=REPO / "config" / "profiles.yaml")
    raw = ingest(reg.source("hh_rlhf", "shared")).table
    assert raw.num_rows == 2304  # 8 of 2,312 quarantined: two Assistant turns in a row
    prompts, chosen, rejected, reasons = recorded_sides(raw)
    judge = HeuristicJudge().label
    pairs = pairs_from_sides(
        prompts, side(chosen, judge(chosen)), side(rejected, judge(rejected)), "recorded", reasons
    )
    assert pairs.num_rows == 2304
    rows = pairs.to_pylist()
    # every usable prompt ends with the human's turn; both answers are the final assistant turns
    kept_rows = [r for r in rows if r["drop_reason"] is None]
    assert all(r["prompt_messages"][-1]["role"] == "user" for r in kept_rows)
    with gzip.open(shared_data / "hh-rlhf/harmless-base/test.jsonl.gz") as f:
        first = json.loads(f.readline())
    line1 = next(r for r in rows if r["source_ref"].endswith(":1"))
    assert first["chosen"].rstrip().endswith(line1["chosen_text"])
    assert first["rejected"].rstrip().endswith(line1["rejected_text"])
    s = summary(pairs)
    # 16 of 2,304: the chosen side judged less safe (11), an empty answer (5); the transcripts
    # whose prompts differed were the malformed ones, now quarantined at ingest
    assert sum(s.dropped.values()) < 0.02 * pairs.num_rows
    assert s.dropped.get("empty", 0) > 0 and s.kept == len(kept_rows)


def test_split_keeps_a_prompt_and_its_near_duplicates_on_one_side():
    questions = [f"What are the symptoms of condition number {i} in adults?" for i in range(40)]
    questions += ["What are the symptoms of condition number 3 in adults ?"]  # a near duplicate
    prompts = _prompts(questions, tags=())
    pairs = pairs_from_sides(
        prompts,
        _side(prompts, [f"Answer {i} in detail." for i in range(41)]),
        _side(prompts, [f"Short {i}." for i in range(41)]),
        "roles",
    )
    train, evals = split_pairs(pairs, 0.25, seed=0)
    assert train.num_rows + evals.num_rows == 41 and evals.num_rows >= 5
    train_prompts = {p.replace(" ?", "?") for p in train.column("prompt").to_pylist()}
    eval_prompts = {p.replace(" ?", "?") for p in evals.column("prompt").to_pylist()}
    assert not train_prompts & eval_prompts


# ---------------------------------------------------------------- the demo through Dagster


class PreferenceBuild:
    def __init__(self, folder: Path, instance, preference: dict | None = None, thresholds=None):
        self.folder, self.instance = folder, instance
        sources = demo_sources_copy(folder, recipes=True)
        self.registry, profiles = write_registry(folder / "config", sources, thresholds=thresholds)
        if preference:
            body = yaml.safe_load(profiles.read_text())
            body["profiles"]["test"]["preference"].update(preference)
            profiles.write_text(yaml.safe_dump(body))
        self.base = str(folder / "data")
        self.defs = definitions.build_defs(
            BuildConfig(
                profile="test",
                registry_path=str(self.registry),
                profiles_path=str(profiles),
                base_uri=self.base,
            ),
            LLMResource(recordings=[str(REPO / "sample_data" / "recorded_responses.jsonl")]),
        )
        self.sources = ["demo_medical", "demo_hh_pairs"]

    def run(self):
        per_source = {
            s: self.defs.resolve_job_def(definitions.PREFERENCE_SOURCE_JOB).execute_in_process(
                partition_key=s, instance=self.instance, raise_on_error=False
            )
            for s in self.sources
        }
        merged = self.defs.resolve_job_def(definitions.PREFERENCE_JOB).execute_in_process(
            instance=self.instance, raise_on_error=False
        )
        return per_source, merged

    def files(self) -> Path:
        storage = Storage(self.base)
        build_id = storage.read_bytes("preference", "LATEST").decode()
        return Path(storage.path("preference", build_id))


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def checks(result) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    """The demo's preference files in both TRL formats."""
    out = {}
    for fmt in ("standard", "conversational"):
        with instance_for_test() as instance:
            build = PreferenceBuild(tmp_path_factory.mktemp(fmt), instance, {"format": fmt})
            per_source, merged = build.run()
            assert all(r.success for r in per_source.values())
            assert merged.success and materialized(merged) == PREFERENCE_ASSETS
            assert (
                all(checks(merged).values()) and len(checks(merged)) == 10
            )  # with preference_files:files_qa
            for s, r in per_source.items():
                assert set(checks(r)) == {
                    "raw_samples:quarantine_rate",
                    "raw_samples:reused_source_ids",
                    "raw_samples:raw_samples_schema",
                    "raw_samples:raw_samples_min_rows",
                    "raw_samples:raw_samples_unique_ids",
                    "preference_pairs:preference_pairs_schema",
                    "preference_pairs:preference_pairs_unique_ids",
                    "preference_pairs:preference_error_rate",
                    "preference_pairs:preference_drop_rate",
                }, s
                assert all(checks(r).values()), s
            out[fmt] = build.files()
    return out


def test_demo_writes_pairs_with_their_judge_labels(demo_files):
    folder = demo_files["standard"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "standard"
    stats = json.loads((folder / "stats.json").read_text())
    # 24 medical questions (1 identical pair dropped) + 11 recorded pairs (1 whose prompts differ)
    assert stats["train"] + stats["eval"] == 33
    rows = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines()]
    assert len(rows) == stats["train"] and {r["source"] for r in rows} == {
        "demo_medical",
        "demo_hh_pairs",
    }
    for r in rows:
        assert isinstance(r["prompt"], str) and r["prompt"].startswith("You are a helpful")
        assert r["chosen"] != r["rejected"] and r["chosen"] and r["rejected"]
        assert set(r) >= {"id", "source", "category", "question_type", "question", "meta"}
    medical = [r for r in rows if r["source"] == "demo_medical"]
    assert {r["meta"]["teacher_model"] for r in medical} == {"demo-careful-teacher"}
    assert {r["meta"]["rejected_model"] for r in medical} == {"demo-less-safe-direct"}
    # the harmful medical request: the teacher's refusal is chosen over the direct compliance
    # (the demo's compliance withholds its content, "[placeholder: harmful detail withheld]": the
    # judge reads it as attempted compliance, COMPLY.BENIGN, not real uplift)
    table = {(t["chosen"], t["rejected"]): t["pairs"] for t in stats["label_table_train"]}
    assert table[("REFUSAL.DIRECT", "COMPLY.BENIGN")] >= 1, table
    assert stats["benign_chosen_refusals_train"] <= 0.1 * stats["benign_prompts_train"]


def test_datasets_loads_the_exported_files(demo_files):
    from datasets import load_dataset

    for fmt, folder in demo_files.items():
        for ext, builder in (("jsonl", "json"), ("parquet", "parquet")):
            ds = load_dataset(
                builder,
                data_files={
                    "train": str(folder / f"train.{ext}"),
                    "eval": str(folder / f"eval.{ext}"),
                },
            )
            assert ds["train"].num_rows + ds["eval"].num_rows == 33, (fmt, ext)
            sample = ds["train"][0]
            if fmt == "conversational":
                assert sample["prompt"][0]["role"] == "system"
                assert sample["prompt"][-1]["role"] == "user"
                assert [m["role"] for m in sample["chosen"]] == ["assistant"]
            else:
                assert isinstance(sample["prompt"], str) and isinstance(sample["chosen"], str)


@pytest.mark.parametrize("fmt", ["standard", "conversational"])
def test_trl_dpo_trainer_trains_on_the_exported_file(demo_files, fmt, tmp_path):
    """The consumer: TRL's DPOTrainer runs two optimisation steps on the exported train file."""
    trl = pytest.importorskip("trl")
    from datasets import load_dataset

    model, tok = tiny_llama()
    train = load_dataset("json", data_files=str(demo_files[fmt] / "train.jsonl"), split="train")
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        max_length=512,
    )
    ref_model = copy.deepcopy(model)  # an unsaved model: TRL cannot load the reference by name
    trainer = trl.DPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=train, processing_class=tok
    )
    result = trainer.train()
    assert result.global_step == 2
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # finite, not NaN


# ---------------------------------------------------------------- gates


def test_over_refusal_gate_blocks_the_files(tmp_path):
    with instance_for_test() as instance:
        build = PreferenceBuild(
            tmp_path, instance, thresholds={"preference_benign_refusal_max": 0.0}
        )
        per_source, merged = build.run()
        assert all(r.success for r in per_source.values())
        assert not merged.success
        assert checks(merged)["preference_train:preference_over_refusal"] is False
        assert "preference_files" not in materialized(merged)
        assert not Storage(build.base).exists("preference", "LATEST")


def test_failed_requests_block_the_source_and_the_merge_names_it(tmp_path):
    """The direct model has no recordings: every rejected request fails, the error-rate gate fails
    the source, and the merge refuses to use it."""
    with instance_for_test() as instance:
        build = PreferenceBuild(tmp_path, instance, {"rejected": "target"})
        per_source, merged = build.run()
        medical = per_source["demo_medical"]
        assert not medical.success
        assert checks(medical)["preference_pairs:preference_error_rate"] is False
        assert per_source["demo_hh_pairs"].success
        assert not merged.success and materialized(merged) == {"eval_prompts"}
        failure = merged.get_step_failure_events()[0].event_specific_data.error.message
        assert "demo_medical is blocked" in failure and "preference_error_rate" in failure


def test_benign_refusals_count_generated_pairs_only():
    t = pa.table(
        {
            "prompt_harmful": [False, False, True, False],
            "chosen_refusal": [True, False, True, True],
            "mode": ["roles", "roles", "roles", "recorded"],
        }
    )
    assert benign_chosen_refusals(t) == (1, 2)


def test_medquad_pairs_through_an_openai_server_back_off_and_skip_hard_errors(
    shared_data, tmp_path
):
    """200 real MedQuAD questions, the default teacher and direct configs (openai backend) against a
    loopback server: a 503 is retried, a hard 400 drops only its pair (counted), and the source
    passes its gates. Prints the figures the closing note reports."""
    from tests.fake_openai import FakeOpenAI

    with gzip.open(shared_data / "medquad" / "medquad_qa.jsonl.gz") as f:
        questions = [json.loads(x)["question"] for _, x in zip(range(200), f, strict=False)]

    def respond(body: dict) -> str:
        question = body["messages"][-1]["content"]
        if "physician" in body["messages"][0]["content"]:
            return f"In general terms: {question.rstrip(' ?')} depends on the person; a clinician can advise."
        return "Just look it up online."

    source = {
        "name": "medquad",
        "kind": "local",
        "location": {"path": str(shared_data / "medquad" / "medquad_qa.jsonl.gz")},
        "format": "jsonl.gz",
        "mapping": {"prompt": "question", "category": "qtype"},
        "roles": ["domain_qa", "benign"],
        "row_limit": 200,
        "seed": 0,
    }
    registry, profiles = write_registry(tmp_path / "config", [source])
    body = yaml.safe_load(profiles.read_text())
    body["profiles"]["test"]["sources"] = ["medquad"]
    body["profiles"]["test"]["preference"]["sources"] = ["medquad"]
    for role in ("teacher", "direct"):  # the defaults: openai backend
        body["profiles"]["test"]["generation"]["configs"].pop(role, None)
    profiles.write_text(yaml.safe_dump(body))
    sampled = ingest(load_registry(registry, profiles).source("medquad", "test")).table
    picked = sampled.column("prompt").to_pylist()
    with (
        FakeOpenAI(responder=respond, faults={picked[0]: [503]}, hard_errors={picked[1]}) as server,
        instance_for_test() as instance,
    ):
        defs = definitions.build_defs(
            BuildConfig(
                profile="test",
                registry_path=str(registry),
                profiles_path=str(profiles),
                base_uri=str(tmp_path / "data"),
            ),
            LLMResource(openai_base_url=server.url, max_retries=2),
        )
        result = defs.resolve_job_def(definitions.PREFERENCE_SOURCE_JOB).execute_in_process(
            partition_key="medquad", instance=instance, raise_on_error=False
        )
        assert result.success and all(checks(result).values())
        assert server.calls[picked[0]] >= 3  # the 503 was retried (teacher and direct asked)
        pairs = Storage(str(tmp_path / "data")).read_table(
            "assets", "preference_pairs", "medquad.parquet"
        )
    s = summary(pairs)
    assert s.candidates == 200 and s.dropped == {"error": 1}
    assert pairs.filter(pa.compute.equal(pairs.column("prompt"), picked[1])).column(
        "drop_reason"
    ).to_pylist() == ["error"]
    assert questions and len(set(pairs.column("category").to_pylist())) > 5
    print(
        f"\nMedQuAD 200 via loopback: {s.kept} pairs, dropped {s.dropped}, "
        f"labels {s.label_table}, benign chosen refusals "
        f"{s.benign_chosen_refusals}/{s.benign_prompts}"
    )


def test_a_flaky_teacher_drops_its_questions_with_a_warning_and_a_rerun_retries_them(tmp_path):
    """An API that fails hard (HTTP 400) on 6 of 40 questions: those pairs are dropped and named, the
    error-rate gate fails as a warning (not an error), the files are written from the other 34;
    the next run sends the 6 failed requests again (not served from the cache as errors) and
    nothing else."""
    from dagster import AssetCheckSeverity

    from tests.fake_openai import FakeOpenAI

    questions = [f"How is condition number {i} usually treated?" for i in range(40)]
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "".join(json.dumps({"question": q, "qtype": "treatment"}) + "\n" for q in questions)
    )
    source = {
        "name": "medical",
        "kind": "local",
        "location": {"path": str(path)},
        "format": "jsonl",
        "mapping": {"prompt": "question", "category": "qtype"},
        "roles": ["domain_qa", "benign"],
    }
    registry, profiles = write_registry(tmp_path / "config", [source])
    body = yaml.safe_load(profiles.read_text())
    test = body["profiles"]["test"]
    test["sources"], test["preference"]["sources"] = ["medical"], ["medical"]
    test["steering"]["sources"] = []
    for role in ("teacher", "direct"):  # the defaults: openai backend
        test["generation"]["configs"].pop(role, None)
    profiles.write_text(yaml.safe_dump(body))

    def respond(body: dict) -> str:
        question = body["messages"][-1]["content"]
        if "physician" in body["messages"][0]["content"]:
            return f"In general terms: {question.rstrip(' ?')} depends on the person; a clinician can advise."
        return "Just look it up online."

    flaky = set(questions[:6])

    def build(server):
        return definitions.build_defs(
            BuildConfig(
                profile="test",
                registry_path=str(registry),
                profiles_path=str(profiles),
                base_uri=str(tmp_path / "data"),
            ),
            LLMResource(openai_base_url=server.url, max_retries=1),
        )

    storage = Storage(str(tmp_path / "data"))
    with instance_for_test() as instance:
        with FakeOpenAI(responder=respond, hard_errors=flaky) as server:
            defs = build(server)
            first = defs.resolve_job_def(definitions.PREFERENCE_SOURCE_JOB).execute_in_process(
                partition_key="medical", instance=instance, raise_on_error=False
            )
            merged = defs.resolve_job_def(definitions.PREFERENCE_JOB).execute_in_process(
                instance=instance, raise_on_error=False
            )
        assert first.success
        gate = next(
            e
            for e in first.get_asset_check_evaluations()
            if e.asset_check_key.name == "preference_error_rate"
        )
        assert not gate.passed and gate.severity == AssetCheckSeverity.WARN
        assert sorted(gate.metadata["questions_dropped"].value) == sorted(flaky)
        assert merged.success and "preference_files" in materialized(merged)
        manifest = json.loads(
            storage.read_bytes(
                "preference", storage.read_bytes("preference", "LATEST").decode(), "manifest.json"
            )
        )
        rows = {f["path"]: f["rows"] for f in manifest["files"]}
        assert rows["train.jsonl"] + rows["eval.jsonl"] == 34
        pairs = storage.read_table("assets", "preference_pairs", "medical.parquet")
        assert summary(pairs).dropped == {"error": 6}

        with FakeOpenAI(responder=respond) as server:  # the API has recovered
            second = (
                build(server)
                .resolve_job_def(definitions.PREFERENCE_SOURCE_JOB)
                .execute_in_process(
                    partition_key="medical", instance=instance, raise_on_error=False
                )
            )
            asked = dict(server.calls)
        assert second.success and all(checks(second).values())
        # only the failed requests were sent again (the server failed both sides of those 6:
        # teacher and direct); the other 34 questions' answers came from the cache
        assert set(asked) == flaky and all(n == 2 for n in asked.values())
        pairs = storage.read_table("assets", "preference_pairs", "medical.parquet")
        assert summary(pairs).dropped == {} and summary(pairs).kept == 40
