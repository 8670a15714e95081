import re
from pathlib import Path

import pytest
import yaml

from safetygraph.sources.registry import RegistryError, load_registry
from tests.conftest import write_registry

BUILT_IN = [
    "wildguard_mix",
    "wildguard_test",
    "sorry_bench",
    "do_not_answer",
    "jailbreak_bench",
    "or_bench",
    "xstest",
    "harmbench",
    "advbench",
    "ultrachat",
    "tau2_airline",
    "tau2_retail",
    "tau2_telecom",
    "tau2_mock",
    "tau2_banking_knowledge",
    "agentdojo",
    "medquad",
    "soda",
    "hh_rlhf",
    "attack_log",
]


def test_default_registry_lists_every_built_in_source():
    reg = load_registry()
    assert set(BUILT_IN) <= set(reg.names)
    assert reg.sources["wildguard_mix"].kind == "hf"
    assert reg.sources["wildguard_mix"].token_env == "HF_TOKEN"
    assert reg.sources["do_not_answer"].responses["GPT4"] == "GPT4_response"
    assert set(reg.profile("production").sources) >= set(BUILT_IN)
    assert reg.profile("production").thresholds.adversarial_safe_min == 400
    assert reg.profile("production").thresholds.train_min == 5000
    assert reg.profile("production").thresholds.retain_harmful_ratio_min == 4.0
    # the circuit-breaker plan's profile: production's sources, every threshold of the plan's own
    plan = reg.profile("stage2-plan")
    assert plan.sources == reg.profile("production").sources
    assert plan.thresholds.dr_ratio == 4.5 and plan.thresholds.eval_fraction == 0.1
    assert plan.thresholds.agent_trace_min == 300 and plan.thresholds.train_min == 5000


def test_profile_override_changes_location_only_for_that_profile():
    reg = load_registry()
    shared = reg.source("xstest", "shared")
    assert shared.kind == "local" and shared.resolved_path().endswith(
        "shared/data/xstest/xstest_prompts.csv"
    )
    assert reg.source("xstest").kind == "url"
    # the deep merge of generation configs keeps the defaults' roles
    assert {"target", "direct", "teacher"} <= set(reg.profile("production").generation)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {
                "name": "Bad Name",
                "kind": "local",
                "location": {"path": "x"},
                "format": "jsonl",
                "mapping": {"prompt": "p"},
            },
            "lower-case",
        ),
        (
            {
                "name": "a",
                "kind": "ftp",
                "location": {"path": "x"},
                "format": "jsonl",
                "mapping": {"prompt": "p"},
            },
            "kind 'ftp'",
        ),
        (
            {
                "name": "a",
                "kind": "local",
                "location": {},
                "format": "jsonl",
                "mapping": {"prompt": "p"},
            },
            "location.path",
        ),
        (
            {
                "name": "a",
                "kind": "local",
                "location": {"path": "x"},
                "format": "xml",
                "mapping": {"prompt": "p"},
            },
            "format 'xml'",
        ),
        (
            {
                "name": "a",
                "kind": "local",
                "location": {"path": "x"},
                "format": "jsonl",
                "mapping": {"question": "q"},
            },
            "not canonical fields",
        ),
        (
            {
                "name": "a",
                "kind": "local",
                "location": {"path": "x"},
                "format": "jsonl",
                "mapping": {"category": "c"},
            },
            "prompt, messages or transcript",
        ),
        (
            {
                "name": "a",
                "kind": "local",
                "location": {"path": "x"},
                "format": "jsonl",
                "mapping": {"prompt": "p"},
                "roles": ["evil"],
            },
            "roles ['evil']",
        ),
    ],
)
def test_bad_registry_entries_fail_with_the_fix(tmp_path: Path, entry, message):
    reg, prof = write_registry(tmp_path, [entry])
    with pytest.raises(RegistryError, match=re.escape(message)) as err:
        load_registry(reg, prof)
    assert "sources.yaml" in str(err.value)


# the smallest registry entry: one local JSONL source
ONE_SOURCE = {
    "name": "a",
    "kind": "local",
    "location": {"path": "x.jsonl"},
    "format": "jsonl",
    "mapping": {"prompt": "p"},
}


def test_profile_naming_an_unknown_source_fails(tmp_path: Path):
    entry = {
        "name": "a",
        "kind": "local",
        "location": {"path": "x"},
        "format": "jsonl",
        "mapping": {"prompt": "p"},
    }
    reg, prof = write_registry(tmp_path, [entry], profiles={"other": {"sources": ["a", "ghost"]}})
    with pytest.raises(RegistryError, match=r"\['ghost'\]"):
        load_registry(reg, prof)


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (
            {"near_dup_treshold": 0.9},
            "unknown threshold 'near_dup_treshold'; did you mean 'near_dup_threshold'?",
        ),
        ({"harmful_min": "ten"}, "threshold 'harmful_min' must be a number (got 'ten')"),
        ({"train_min": 10.5}, "threshold 'train_min' must be a whole number"),
        ({"seed_compat": "yes"}, "threshold 'seed_compat' must be true or false"),
        ({"over_length": "truncate"}, "threshold 'over_length' must be one of fail, drop"),
        ({"judge_floors": [0.9]}, "threshold 'judge_floors' must be a mapping"),
    ],
)
def test_a_bad_threshold_is_one_error_naming_the_file(tmp_path: Path, thresholds, message):
    reg, prof = write_registry(
        tmp_path,
        [ONE_SOURCE],
        thresholds=thresholds,
    )
    with pytest.raises(RegistryError) as err:
        load_registry(reg, prof)
    assert str(prof) in str(err.value) and "profile 'test'" in str(err.value)
    assert message in str(err.value)


def test_every_threshold_has_its_default_in_one_place(tmp_path: Path):
    """A profile that sets no threshold gets every default of safetygraph/sources/thresholds.py;
    the sizes, which have none, stay unset (the checks that need them say so)."""
    import dataclasses

    from safetygraph.sources.thresholds import Thresholds

    reg, prof = write_registry(
        tmp_path,
        [ONE_SOURCE],
    )
    data = yaml.safe_load(prof.read_text())
    data["profiles"]["test"]["thresholds"] = {}
    data["profiles"]["defaults"]["thresholds"] = {}
    prof.write_text(yaml.safe_dump(data))
    t = load_registry(reg, prof).profile("test").thresholds
    assert t == Thresholds() and dataclasses.is_dataclass(t)
    assert t.harmful_min is None and t.near_dup_threshold == 0.8 and t.qa == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.eval_fraction = 0.5  # a build cannot change its profile's gates on the way


def test_a_size_minimum_the_profile_does_not_set_is_one_error(tmp_path: Path):
    """The size minimums have no universal default: a check that needs one the profile does not
    set fails naming the profile and the key, not with a KeyError."""
    from safetygraph.sources.thresholds import ThresholdError, Thresholds, required

    assert required(Thresholds(train_min=5), "train_min", "profile 'p'") == 5
    with pytest.raises(ThresholdError, match="profile 'p' sets no threshold 'harmful_min'"):
        required(Thresholds(), "harmful_min", "profile 'p'")
    with pytest.raises(ThresholdError, match="no threshold 'harmfull_min'"):
        required(Thresholds(), "harmfull_min", "profile 'p'")


def test_recipe_settings_are_typed_and_checked_where_they_are_set():
    """The preference and steering sections load as frozen dataclasses: an unknown key names the
    nearest known one, a wrong type is one error, and the command line's settings laid over a
    profile are checked the same way."""
    import dataclasses

    from safetygraph.sources.recipe_settings import (
        PreferenceSettings,
        SettingsError,
        SteeringSettings,
        overlay,
        parse,
    )

    pref = parse(
        PreferenceSettings, {"sources": ["medquad"], "samples": 2}, "profile 'p'", "preference"
    )
    assert pref.sources == ("medquad",) and pref.samples == 2 and pref.format == "standard"
    with pytest.raises(dataclasses.FrozenInstanceError):
        pref.samples = 3
    with pytest.raises(
        SettingsError, match="unknown preference setting 'sample'; did you mean 'samples'"
    ):
        parse(PreferenceSettings, {"sample": 2}, "profile 'p'", "preference")
    with pytest.raises(SettingsError, match="steering.limit must be a whole number"):
        parse(SteeringSettings, {"limit": 2.5}, "profile 'p'", "steering")
    with pytest.raises(SettingsError, match="preference.format 'jsonl' is not one of"):
        overlay(pref, {"format": "jsonl"}, "--preference", "preference")
    assert overlay(
        SteeringSettings(), {"traits": ["Extroversion"]}, "--steering", "steering"
    ).traits == ("Extroversion",)
    demo = load_registry().profile("demo")
    assert isinstance(demo.preference, PreferenceSettings) and demo.preference.eval_fraction == 0.2
    assert isinstance(demo.steering, SteeringSettings) and demo.steering.max_length_ratio == 3.0


def test_generation_configs_are_checked_when_the_profile_loads(tmp_path: Path):
    """A profile's generation configs are GenerationConfig objects from load to use: a misspelt
    key or an unknown backend is one error naming the profile file, before any step runs."""
    from safetygraph.generation import GenerationConfig

    assert isinstance(load_registry().profile("demo").generation["target"], GenerationConfig)
    for config, message in (
        ({"modell": "x"}, "unknown keys ['modell']"),
        ({"backend": "ollama"}, "backend 'ollama' is not one of"),
    ):
        reg, prof = write_registry(
            tmp_path / message[:7].strip(),
            [ONE_SOURCE],
            profiles={"bad": {"sources": ["a"], "generation": {"configs": {"target": config}}}},
        )
        with pytest.raises(RegistryError, match="profile 'bad'") as err:
            load_registry(reg, prof)
        assert message in str(err.value)
