"""Efficacy: the runs of ``safetygraph.efficacy`` and the assets that wire them. The default demo
materializes the refusal detector's figures and skips the model runs with the reason (the demo
profile names no model); the model runs' mechanics are checked here on a tiny random Llama (their
figures on a real model come from the real-small build: tests/generation/test_real_model.py)."""

import json
import math

import pyarrow.parquet as pq
import pytest

from safetygraph.core.storage import Storage
from safetygraph.efficacy import EfficacySkipped, missing
from safetygraph.efficacy.runs import run_recipe
from safetygraph.sources.errors import RegistryError
from safetygraph.sources.recipe_settings import EfficacySettings
from safetygraph.sources.registry import load_registry
from tests.conftest import REPO
from tests.helpers import tiny_llama


def test_demo_measures_the_refusal_detector_and_skips_the_model_runs_with_the_reason(readme_demo):
    out = readme_demo.result.stdout
    line = next(x for x in out.splitlines() if x.startswith("  refusal efficacy: "))
    assert "judge_f1 = " in line and "floor 0.5: met" in line, line
    for recipe in ("circuit_breaker", "preference", "steering"):
        assert (
            f"  {recipe} efficacy: skipped (profile 'demo' names no efficacy model (efficacy.model))"
            in out
        ), out[-3000:]
        assert not (readme_demo.data / "assets" / f"{recipe}_efficacy.parquet").exists()
    figures = {
        r["figure"]: r["value"]
        for r in pq.read_table(readme_demo.data / "assets" / "refusal_efficacy.parquet").to_pylist()
    }
    written = json.loads((readme_demo.latest("exports") / "efficacy.json").read_text())
    assert written["figures"] == pytest.approx(figures)
    assert (
        written["details"]["human_set"] == "labelled_answers.jsonl"
    )  # no source of the demo has human labels
    assert "# Efficacy: refusal" in (readme_demo.latest("exports") / "EFFICACY.md").read_text()


def test_the_refusal_detector_beats_its_shuffled_control(readme_demo):
    storage = Storage(str(readme_demo.data))
    build_id = storage.read_bytes("exports", "LATEST").decode()
    real = run_recipe("refusal", storage, build_id, EfficacySettings(), "demo")
    control = run_recipe("refusal", storage, build_id, EfficacySettings(), "demo", control=True)
    assert real.figures["judge_f1"] > control.figures["judge_f1"] + 0.3, (
        real.figures,
        control.figures,
    )
    assert real.figures["human_accuracy"] > control.figures["human_accuracy"]
    assert all(math.isfinite(v) for v in real.figures.values())


def test_efficacy_settings_are_checked_when_the_profiles_load(tmp_path):
    profiles = (REPO / "config" / "profiles.yaml").read_text()
    bad = tmp_path / "profiles.yaml"
    bad.write_text(
        profiles.replace(
            "    efficacy:\n      model: smollm2", "    efficacy:\n      modle: smollm2"
        )
    )
    with pytest.raises(
        RegistryError, match="unknown efficacy setting 'modle'; did you mean 'model'"
    ):
        load_registry(profiles_path=bad)
    bad.write_text(
        profiles.replace("      model: smollm2", "      model: smollm2\n      policy: loud")
    )
    with pytest.raises(RegistryError, match="efficacy.policy 'loud' is not one of warn, block"):
        load_registry(profiles_path=bad)
    assert load_registry().profile("real-small").efficacy.model == "smollm2"


def test_a_missing_extra_is_a_skip_with_the_install_command(monkeypatch):
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "peft" else real_find(name, *a),
    )
    why = missing("preference")
    assert why and "peft" in why and "pip install -e '.[efficacy]'" in why
    with pytest.raises(EfficacySkipped, match="peft"):
        run_recipe(
            "circuit_breaker", Storage("/nonexistent"), "b", EfficacySettings(model="x"), "p"
        )


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("peft")
    pytest.importorskip("steering_vectors")
    model, tok = tiny_llama()
    folder = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("recipe", ["steering", "preference", "circuit_breaker"])
def test_model_runs_give_finite_figures_on_the_demo_files(readme_demo, tiny_model_dir, recipe):
    """A random two-layer Llama: the figures mean nothing, but each run trains or steers, measures
    before and after, and reports finite figures and how it ran."""
    storage = Storage(str(readme_demo.data))
    root = {
        "steering": "steering",
        "preference": "preference",
        "circuit_breaker": "circuit_breaker",
    }[recipe]
    build_id = storage.read_bytes(root, "LATEST").decode()
    settings = EfficacySettings(
        model=tiny_model_dir, dpo_steps=2, rr_steps=2, questions=2, max_new_tokens=4
    )
    result = run_recipe(recipe, storage, build_id, settings, "test")
    assert result.figures and all(math.isfinite(v) for v in result.figures.values()), result.figures
    assert result.recipe == recipe and result.seconds > 0
    if recipe == "steering":
        assert set(result.details["traits"]) == {"extroversion", "neuroticism"}
        assert all(d["layer"] in (0, 1) for d in result.details["traits"].values())
    else:
        assert result.steps == 2
    if recipe == "circuit_breaker":
        f = result.figures
        assert f["selectivity"] == pytest.approx(f["dr_similarity"] - f["ds_similarity_train"])
        assert result.config["init_noise"] > 0 and result.config["dr_batch"] == 4


def _ab(i: int, first: bool) -> dict:
    pos, neg = ("(1", "(2") if first else ("(2", "(1")
    return {
        "id": f"r{i}",
        "question": f"q{i}",
        "answer_matching_behavior": pos,
        "answer_not_matching_behavior": neg,
    }


def test_steering_split_keeps_the_option_balance_on_both_sides():
    from safetygraph.efficacy.steering import SteeringRun, balanced, split_rows

    rows = [_ab(i, i % 2 == 0) for i in range(40)]
    train, test = split_rows(rows, SteeringRun(heldout_share=0.34, seed=3))
    assert len(train) + len(test) == 40 and not {r["id"] for r in train} & {r["id"] for r in test}
    for side in (train, test):
        firsts = sum(r["answer_matching_behavior"] == "(1" for r in side)
        assert 0 < firsts < len(side)
    even = balanced(train)
    assert sum(r["answer_matching_behavior"] == "(1" for r in even) * 2 == len(even)
    with pytest.raises(EfficacySkipped, match="too few"):
        split_rows(rows[:2], SteeringRun())


def test_controls_permute_what_the_recipe_learns_from():
    from safetygraph.efficacy.circuit_breaker import RerouteRun, split_training
    from safetygraph.efficacy.preference import control_pairs

    pairs = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(200)]
    swapped = sum(p["chosen"].startswith("r") for p in control_pairs(pairs, 0))
    assert 70 < swapped < 130
    rows = [
        {"id": str(i), "cb_class": "harmful" if i < 20 else "retain", "messages": []}
        for i in range(100)
    ]
    ds, dr = split_training(rows, RerouteRun(), control=False)
    assert {r["cb_class"] for r in ds} == {"harmful"} and len(dr) == 80
    ds_c, _ = split_training(rows, RerouteRun(), control=True)
    assert len(ds_c) == 20 and sum(r["cb_class"] == "harmful" for r in ds_c) < 12
    # each control draw is its own permutation; the first is the one control=True gives
    ds_2, _ = split_training(rows, RerouteRun(), control=2)
    assert len(ds_2) == 20 and {r["id"] for r in ds_2} != {r["id"] for r in ds_c}
    assert split_training(rows, RerouteRun(), control=1)[0] == ds_c


def test_the_steering_control_swaps_half_of_each_position_and_keeps_the_balance():
    from safetygraph.efficacy.steering import _swapped, balanced

    rows = balanced([_ab(i, i % 3 == 0) for i in range(60)])  # 20 positive-first, 20 second
    for draw in (1, 2):
        swap = _swapped(rows, draw - 1)
        firsts = [r for r in rows if r["answer_matching_behavior"] == "(1"]
        assert len(swap) == 20 and len(swap & {r["id"] for r in firsts}) == 10
        # after the swap as many pairs say the positive option is first as second
        after_first = sum(
            (r["id"] in swap) != (r["answer_matching_behavior"] == "(1") for r in rows
        )
        assert after_first * 2 == len(rows)
    assert _swapped(rows, 0) != _swapped(rows, 1)


def test_outcome_mix_reads_the_judges_labels():
    import pyarrow as pa

    from safetygraph.efficacy.judged import outcome_mix

    judged = pa.table(
        {
            "prompt_harmful": [True, True, True, True, False, False],
            "response_refusal": [True, True, False, False, True, False],
            "response_harmful": [False, False, True, False, False, False],
        }
    )
    mix = outcome_mix(judged)
    assert mix == {
        "harmful_prompts": 4.0,
        "harmful_refusal_rate": 0.5,
        "harmful_answer_rate": 0.25,
        "safe_prompts": 2.0,
        "safe_refusal_rate": 0.5,
    }
