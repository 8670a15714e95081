"""The steering recipe (CAA pairs): traits file, the A/B question format and its balance, every
blocking gate failing on crafted data with the files skipped, resume after a killed run, and the
consumer: the steering-vectors library trains a vector from the exported pairs."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from dagster import StaticPartitionsDefinition, asset, instance_for_test, materialize
from safetygraph.location.checks.steering import per_trait
from safetygraph.location.resources import BuildConfig, LLMResource

from safetygraph.audit.decont import EVAL_PROMPTS_SCHEMA
from safetygraph.core.storage import Storage
from safetygraph.generation import GenerationConfig, OpenAIBackend, RequestCache
from safetygraph.location import definitions
from safetygraph.recipes.steering.answers import ANSWER_SCHEMA, scenarios, trait_answers
from safetygraph.recipes.steering.pairs import PAIR_SCHEMA, QUESTION_RE, build_pairs, summary
from safetygraph.recipes.steering.traits import TraitsError, load_traits
from tests.conftest import REPO, demo_sources_copy, write_registry
from tests.fake_openai import FakeOpenAI
from tests.helpers import kill_after_chunks, tiny_llama

BOOK = load_traits()


def answers_table(pos: list[str], neu: list[str], scenarios_: list[str] | None = None, errors=None):
    n = len(pos)
    scenarios_ = scenarios_ or [f"Scenario number {i} at the office." for i in range(n)]
    return pa.Table.from_pylist(
        [
            {
                "trait": "extroversion",
                "scenario_id": f"s{i:03d}",
                "source": "demo",
                "scenario": scenarios_[i],
                "character": "Alice",
                "description_positive": "outgoing",
                "description_neutral": "calm",
                "answer_positive": pos[i],
                "answer_neutral": neu[i],
                "model": "m",
                "error": (errors or [None] * n)[i],
            }
            for i in range(n)
        ],
        schema=ANSWER_SCHEMA,
    )


def test_traits_file_lists_the_big_five_and_the_dark_triad(tmp_path):
    assert set(BOOK.names) == {
        "extroversion",
        "agreeableness",
        "conscientiousness",
        "neuroticism",
        "openness",
        "machiavellianism",
        "narcissism",
        "psychopathy",
    }
    assert {t.family for t in BOOK.traits.values()} == {"big_five", "dark_triad"}
    bad = tmp_path / "traits.yaml"
    body = yaml.safe_load((REPO / "config" / "traits.yaml").read_text())
    body["traits"].append(
        {"name": "Bad Name", "family": "big_five", "definition": "x", "markers": ["y"]}
    )
    bad.write_text(yaml.safe_dump(body))
    with pytest.raises(TraitsError, match="lower-case"):
        load_traits(bad)


def test_questions_follow_the_seed_layout_and_the_order_is_balanced():
    n = 40
    pairs = build_pairs(
        answers_table(
            [f"Let's all go to the party together, number {i}!" for i in range(n)],
            [f"Okay, I have noted that down, number {i}." for i in range(n)],
        ),
        BOOK.trait("extroversion"),
    )
    s = summary(pairs)
    assert s.kept == n and s.positive_first == n // 2
    for r in pairs.to_pylist():
        assert QUESTION_RE.match(r["question"]), r["question"]
        first, second = r["question"].split("\n1. ")[1].split("\n[Answer]")[0].split("\n2. ")
        expected = (r["answer_positive"], r["answer_neutral"])
        assert (first, second) == (expected if r["positive_first"] else expected[::-1])
        assert (r["positive"], r["neutral"]) == (
            ("(1", "(2") if r["positive_first"] else ("(2", "(1")
        )


def test_drop_reasons():
    pairs = build_pairs(
        answers_table(
            [
                "Let's party together tonight!",  # usable
                None,  # failed
                "Same words.",  # identical
                "Hi.",  # length mismatch
                "I will go to the counter now.",  # no trait marker: trait_not_expressed
                "Let's celebrate with friends!",  # the scenario of row 0 again
            ],
            [
                "Okay, I will see you there.",
                "Fine.",
                "same words.",
                "Alright then, I will think about it and reply tomorrow morning.",
                "I will go to the desk then.",
                "Sure, that works for me.",
            ],
            scenarios_=["A", "B", "C", "D", "E", "A"],
            errors=[None, "http_4xx: 400", None, None, None, None],
        ),
        BOOK.trait("extroversion"),
    )
    reasons = dict(
        zip(
            pairs.column("scenario_id").to_pylist(),
            pairs.column("drop_reason").to_pylist(),
            strict=True,
        )
    )
    assert reasons == {
        "s000": None,
        "s001": "error",
        "s002": "identical",
        "s003": "length_mismatch",
        "s004": "trait_not_expressed",
        "s005": "duplicate_scenario",
    }


# ---------------------------------------------------------------- gates on crafted data


EVAL_PROMPT = "Alice's colleague asks her to cover a shift at the hospital on the weekend"


def crafted(pairs: pa.Table):
    """Run the per-trait gates on a crafted steering_pairs value, with a downstream asset."""
    traits = StaticPartitionsDefinition(BOOK.names)

    @asset(partitions_def=traits, name="steering_pairs")
    def steering_pairs() -> pa.Table:
        return pairs

    @asset(partitions_def=traits, deps=[steering_pairs])
    def downstream() -> None:
        return None

    @asset(name="eval_prompts")
    def eval_prompts() -> pa.Table:
        return pa.table(
            {"eval_set": ["bench"], "eval_id": ["1"], "prompt": [EVAL_PROMPT]},
            schema=EVAL_PROMPTS_SCHEMA,
        )

    with instance_for_test() as instance:
        result = materialize(
            [eval_prompts, steering_pairs, downstream, *per_trait(traits)],
            partition_key="extroversion",
            instance=instance,
            resources={"settings": BuildConfig(profile="demo")},
            raise_on_error=False,
        )
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return checks, mats


def good_pairs(n: int = 20) -> pa.Table:
    return build_pairs(
        answers_table(
            [f"Let's all go to the party together, number {i}!" for i in range(n)],
            [f"Okay, I have noted that down, number {i}." for i in range(n)],
        ),
        BOOK.trait("extroversion"),
    )


def test_good_pairs_pass_every_gate():
    checks, mats = crafted(good_pairs())
    assert all(checks.values()) and len(checks) == 7 and "downstream" in mats


@pytest.mark.parametrize(
    "gate, damage",
    [
        (
            "steering_well_formed",
            lambda t: t.set_column(
                t.schema.get_field_index("question"),
                "question",
                pa.array(["What should Alice say?"] * t.num_rows),
            ),
        ),
        (
            "steering_position_balance",
            lambda t: t.set_column(
                t.schema.get_field_index("positive_first"),
                "positive_first",
                pa.array([True] * t.num_rows),
            ),
        ),
        ("steering_min_pairs", lambda t: t.slice(0, 0)),
        (
            "no_eval_prompts_in_train",  # a scenario that is an evaluation prompt
            lambda t: t.set_column(
                t.schema.get_field_index("question"),
                "question",
                pa.array(
                    [
                        f"[Situation]\n{EVAL_PROMPT}.\n[Question]\n{q.split('[Question]')[1]}"
                        for q in t.column("question").to_pylist()
                    ]
                ),
            ),
        ),
        (
            "steering_no_duplicate_scenarios",
            lambda t: t.set_column(
                t.schema.get_field_index("scenario_hash"),
                "scenario_hash",
                pa.array(["same"] * t.num_rows),
            ),
        ),
        (
            "steering_drop_rate",
            lambda t: t.set_column(
                t.schema.get_field_index("drop_reason"),
                "drop_reason",
                pa.array(["trait_not_expressed"] * (t.num_rows - 2) + [None, None]),
            ),
        ),
    ],
)
def test_each_gate_fails_on_crafted_data_and_skips_downstream(gate, damage):
    checks, mats = crafted(damage(good_pairs()).cast(PAIR_SCHEMA))
    assert checks[gate] is False
    assert "downstream" not in mats


# ---------------------------------------------------------------- demo and consumer


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("steer")
    sources = demo_sources_copy(folder, recipes=True)
    registry, profiles = write_registry(folder / "config", sources)
    demo = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())["profiles"]["demo"]
    defs = definitions.build_defs(
        BuildConfig(
            profile="test",
            registry_path=str(registry),
            profiles_path=str(profiles),
            base_uri=str(folder / "data"),
        ),
        LLMResource(recordings=[str(REPO / "sample_data" / "recorded_responses.jsonl")]),
    )
    with instance_for_test() as instance:
        results = {
            "ingest": defs.resolve_job_def(definitions.INGEST_JOB).execute_in_process(
                partition_key="demo_scenarios", instance=instance, raise_on_error=False
            )
        }
        results["decontamination"] = defs.resolve_job_def(
            definitions.STEERING_DECONT_JOB
        ).execute_in_process(instance=instance, raise_on_error=False)
        for trait in demo["steering"]["traits"]:
            results[trait] = defs.resolve_job_def(
                definitions.STEERING_TRAIT_JOB
            ).execute_in_process(partition_key=trait, instance=instance, raise_on_error=False)
        results["files"] = defs.resolve_job_def(definitions.STEERING_JOB).execute_in_process(
            instance=instance, raise_on_error=False
        )
    storage = Storage(str(folder / "data"))
    build_id = storage.read_bytes("steering", "LATEST").decode()
    return results, Path(storage.path("steering", build_id))


def test_demo_writes_both_formats_for_two_traits(demo_build):
    results, folder = demo_build
    assert all(r.success for r in results.values())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["traits"] == ["extroversion", "neuroticism"]
    stats = json.loads((folder / "stats.json").read_text())
    for trait in ("extroversion", "neuroticism"):
        seed = [
            json.loads(x) for x in (folder / "seed" / f"{trait}.jsonl").read_text().splitlines()
        ]
        caa = [json.loads(x) for x in (folder / "caa" / f"{trait}.jsonl").read_text().splitlines()]
        assert len(seed) == len(caa) == stats[trait]["kept"] == 22  # 24 scenarios, 2 dropped
        assert stats[trait]["dropped"] == {"duplicate_scenario": 1, "trait_not_expressed": 1}
        assert all(set(r) >= {"question", "positive", "neutral"} for r in seed)
        assert all(
            set(r) >= {"answer_matching_behavior", "answer_not_matching_behavior"} for r in caa
        )
        share = sum(r["positive"] == "(1" for r in seed) / len(seed)
        assert abs(share - 0.5) <= 0.1
        assert all(QUESTION_RE.match(r["question"]) for r in seed)


def test_steering_vectors_trains_a_vector_from_the_exported_pairs(demo_build):
    """The consumer: steering-vectors' train_steering_vector on a tiny random Llama."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    sv = pytest.importorskip("steering_vectors")
    _, folder = demo_build
    rows = [json.loads(x) for x in (folder / "caa" / "extroversion.jsonl").read_text().splitlines()]
    samples = [
        (
            r["question"] + " " + r["answer_matching_behavior"],
            r["question"] + " " + r["answer_not_matching_behavior"],
        )
        for r in rows
    ]
    model, tok = tiny_llama()  # seeded: a random two-layer Llama and the demo tokenizer
    hidden = model.config.hidden_size
    vector = sv.train_steering_vector(model, tok, samples, layers=[1], read_token_index=-2)
    assert set(vector.layer_activations) == {1}
    assert tuple(vector.layer_activations[1].shape) == (hidden,)
    assert torch.isfinite(vector.layer_activations[1]).all()


KILL_SCRIPT = """
import sys
from safetygraph.core.storage import Storage
from safetygraph.generation import GenerationConfig, OpenAIBackend, RequestCache
from tests.recipes.test_steering import BOOK, many_scenarios
from safetygraph.recipes.steering.answers import trait_answers
url, base = sys.argv[1], sys.argv[2]
trait_answers(many_scenarios(), BOOK.trait("openness"), BOOK, GenerationConfig(backend="openai", model="m"),
              lambda c: OpenAIBackend(base_url=url, max_concurrency=2), cache=RequestCache(Storage(base)), chunk_size=10)
"""


def many_scenarios(n: int = 60) -> pa.Table:
    return pa.table(
        {
            "scenario_id": [f"s{i:03d}" for i in range(n)],
            "source": ["demo"] * n,
            "scenario": [f"Person {i} finds a lost kitten." for i in range(n)],
            "character": [f"Person {i}" for i in range(n)],
        }
    )


def test_a_killed_run_resumes_and_repeats_at_most_one_chunk(tmp_path):
    base = str(tmp_path / "data")
    cache_dir = tmp_path / "data" / "cache" / "requests"
    with FakeOpenAI(latency_s=0.02) as server:
        chunks_at_kill = kill_after_chunks(KILL_SCRIPT, [server.url, base], cache_dir, REPO)
        assert 3 <= chunks_at_kill < 12, "killed mid-run"
        out, stats = trait_answers(
            many_scenarios(),
            BOOK.trait("openness"),
            BOOK,
            GenerationConfig(backend="openai", model="m"),
            lambda c: OpenAIBackend(base_url=server.url, max_concurrency=2),
            cache=RequestCache(Storage(base)),
            chunk_size=10,
        )
    assert out.num_rows == 60 and out.column("error").null_count == 60
    assert stats["descriptions"].cache_hits >= 10 * min(chunks_at_kill, 12)
    repeated = sum(n - 1 for n in server.calls.values() if n > 1)
    assert repeated <= 10 + 2  # at most one unflushed chunk plus the requests in flight


def test_scenarios_read_the_character_from_meta():
    rows = pa.table(
        {
            "id": ["a", "b"],
            "source": ["soda", "soda"],
            "prompt": ["Jo meets Sam.", "Nobody here."],
            "meta": [json.dumps({"PersonX": "Jo"}), None],
        }
    )
    t = scenarios(rows, "PersonX", "the main character")
    assert t.column("character").to_pylist() == ["Jo", "the main character"]


def test_trait_answers_ask_four_questions_a_scenario(tmp_path):
    with FakeOpenAI() as server:
        out, stats = trait_answers(
            many_scenarios(3),
            BOOK.trait("narcissism"),
            BOOK,
            GenerationConfig(backend="openai", model="m"),
            lambda c: OpenAIBackend(base_url=server.url),
            cache=RequestCache(Storage(str(tmp_path))),
        )
        bodies = list(server.bodies)
    assert stats["descriptions"].requests == 6 and stats["answers"].requests == 6
    prompts = [b["messages"][-1]["content"] for b in bodies]
    described = [p for p in prompts if p.startswith("Read the situation")]
    assert len(described) == 6
    assert sum("strongly high in narcissism" in p for p in described) == 3
    assert sum(p.startswith("Situation: ") and "About Person" in p for p in prompts) == 6
    assert out.column("answer_positive").to_pylist()[0].startswith("echo: Situation:")
