"""The seeds' flags as settings (no build): what `safetygraph build` lays over the profile for each
flag, what it refuses with one line, and the rejection-detection system's JSON constitution."""

from __future__ import annotations

import json

import pytest

from safetygraph.cli import main
from safetygraph.labeling.constitution import ConstitutionError, load_constitution
from safetygraph.seed_flags import OPENROUTER_URL, add_flags, profile_set
from safetygraph.sources.profile_set import apply_profile_set, parse_profile_set
from safetygraph.sources.registry import RegistryError, load_registry


def _args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    add_flags(parser)
    return parser.parse_args(argv)


def test_sources_go_to_the_recipe_that_reads_them():
    body, only, _env = profile_set(_args("preference", "--sources", "medquad"), ("preference",))
    assert body == {"preference": {"sources": ["medquad"]}} and only == ()
    body, only, _env = profile_set(_args("steering", "--datasets", "demo_scenarios"), ("steering",))
    assert body == {"steering": {"sources": ["demo_scenarios"]}}
    # S0's --datasets: the refusal merge reads exactly these
    body, only, _env = profile_set(
        _args("refusal", "--datasets", "demo_pairs", "demo_agentic"), ("refusal",)
    )
    assert body == {"sources": ["demo_pairs", "demo_agentic"]}
    assert only == ("demo_pairs", "demo_agentic")


def test_judge_target_samples_and_models_become_settings(monkeypatch):
    monkeypatch.delenv("SAFETYGRAPH_OPENAI_BASE_URL", raising=False)
    args = _args("refusal", "--judge", "heuristic", "--target-samples", "100", "--seed", "42")
    assert profile_set(args, ("refusal",))[0] == {
        "seed": 42,
        "judge": "heuristic",
        "target_samples": 100,
    }
    body, _, env = profile_set(
        _args("steering", "--model", "HuggingFaceTB/SmolLM2-135M"), ("steering",)
    )
    assert body["configs"] == {
        "steering": {"backend": "transformers", "model": "HuggingFaceTB/SmolLM2-135M"}
    }
    body, _, env = profile_set(
        _args("steering", "--openrouter-model", "qwen/qwen3-next-80b-a3b-instruct"), ("steering",)
    )
    assert body["configs"]["steering"]["backend"] == "openai"
    # the variables of this build only: the command sets them around the build, never for good
    assert env == {"SAFETYGRAPH_OPENAI_BASE_URL": OPENROUTER_URL}
    import os

    assert "SAFETYGRAPH_OPENAI_BASE_URL" not in os.environ
    # the profile's steering config takes the model, its other settings kept
    reg = load_registry()
    laid = apply_profile_set(reg.profile("demo"), reg, parse_profile_set(json.dumps(body)))
    steering = laid.generation["steering"]
    assert steering.model == "qwen/qwen3-next-80b-a3b-instruct"
    assert steering.max_tokens == 256 and steering.backend == "openai"


@pytest.mark.parametrize(
    ("argv", "recipes", "message"),
    [
        (
            ("steering", "--openrouter-api-key", "sk-x"),
            ("steering",),
            "export SAFETYGRAPH_LLM_API_KEY",
        ),
        (("refusal", "--personality", "Extroversion"), ("refusal",), "steering recipe's flags"),
        (("refusal", "--model", "m"), ("refusal",), "steering recipe's flags"),
        (("steering", "--target-samples", "5"), ("steering",), "refusal recipe's flag"),
        (("refusal", "--constitution", "/no/such.json"), ("refusal",), "no such file"),
        (("steering", "--openrouter-max-workers", "0"), ("steering",), "at least 1"),
        (("steering", "--limit-samples", "-2"), ("steering",), "at least 1"),
    ],
)
def test_flags_a_recipe_does_not_take_are_one_line(argv, recipes, message):
    with pytest.raises(SystemExit, match=message):
        profile_set(_args(*argv), recipes)


def test_an_unknown_judge_or_a_bad_size_is_refused():
    with pytest.raises(RegistryError, match="--judge 'gpt5' is not known"):
        parse_profile_set('{"judge": "gpt5"}')
    with pytest.raises(RegistryError, match="--target-samples 0"):
        parse_profile_set('{"target_samples": 0}')


def test_the_api_key_never_reaches_the_build(capsys):
    # refused before any job: the key is neither used nor echoed
    with pytest.raises(SystemExit) as err:
        main(["build", "steering", "--openrouter-api-key", "sk-secret-123"])
    assert "sk-secret-123" not in str(err.value)
    assert "sk-secret-123" not in capsys.readouterr().out


SEED = {
    "harm_categories": ["weapons", "violence", "self_harm", "stalking"],
    "refusal_indicators": ["I can't", "not allowed"],
    "labeling_rules": {
        "outcome_determination": {
            "REFUSAL.DIRECT": "prompt_harmful=true AND response_refusal=true",
            "COMPLY.BENIGN": "prompt_harmful=false AND response_refusal=false",
        }
    },
}


def test_the_seeds_json_constitution_is_laid_over_ours(tmp_path):
    path = tmp_path / "constitution.json"
    path.write_text(json.dumps(SEED))
    c = load_constitution(path)
    assert list(c.body["harm_categories"]) == ["weapons", "violence", "self_harm", "stalking"]
    assert c.body["harm_categories"]["stalking"] == [r"\bstalking"]  # a new name matches itself
    assert "i can't" in c.body["refusal_indicators"]["inability"]
    rules = c.body["outcome_rules"]
    # the seed's rules first, with the label schema's invariants; ours decide the rest
    assert rules[0] == {
        "outcome": "REFUSAL.DIRECT",
        "when": "( prompt_harmful AND refusal ) AND refusal",
    }
    assert rules[1]["when"] == "( NOT prompt_harmful AND NOT refusal ) AND NOT refusal"
    assert rules[-1] == {"outcome": "COMPLY.BENIGN", "when": "TRUE"}


def test_a_seed_constitution_with_an_unknown_signal_or_outcome_is_one_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {**SEED, "labeling_rules": {"outcome_determination": {"COMPLY.BENIGN": "toxic=true"}}}
        )
    )
    with pytest.raises(ConstitutionError, match="'toxic' is not a signal"):
        load_constitution(path)
    path.write_text(
        json.dumps(
            {**SEED, "labeling_rules": {"outcome_determination": {"REFUSE": "prompt_harmful=true"}}}
        )
    )
    with pytest.raises(ConstitutionError, match=r"outcome\(s\) \['REFUSE'\] are not known"):
        load_constitution(path)
    path.write_text("{not json")
    with pytest.raises(ConstitutionError, match="not readable as json"):
        load_constitution(path)
