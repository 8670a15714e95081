"""The Python API's pieces that need no build: recipe names, the scoped environment of a build (one
call's profile, version and settings never leak into the next), and load's refusals."""

import json
import os

import pytest

from safetygraph.api import BuildError, load, parse_recipes, scoped_env


def test_recipes_parse_in_pipeline_order_and_unknown_ones_are_refused():
    assert parse_recipes("steering, refusal") == ("refusal", "steering")
    assert parse_recipes(["circuit-breaker"]) == ("circuit_breaker",)
    assert parse_recipes("all") == ("refusal", "circuit_breaker", "preference", "steering")
    with pytest.raises(BuildError, match="unknown recipe"):
        parse_recipes("refusal,dpo")


def test_a_build_environment_is_restored_afterwards(monkeypatch):
    monkeypatch.setenv("SAFETYGRAPH_PROFILE", "shared")
    monkeypatch.delenv("SAFETYGRAPH_EXPORT_VERSION", raising=False)
    with scoped_env({"SAFETYGRAPH_PROFILE": "demo", "SAFETYGRAPH_EXPORT_VERSION": "1.0.0"}):
        assert os.environ["SAFETYGRAPH_PROFILE"] == "demo"
        assert os.environ["SAFETYGRAPH_EXPORT_VERSION"] == "1.0.0"
    assert os.environ["SAFETYGRAPH_PROFILE"] == "shared"
    assert "SAFETYGRAPH_EXPORT_VERSION" not in os.environ
    with scoped_env({"SAFETYGRAPH_PROFILE": None}):  # None: left as it is
        assert os.environ["SAFETYGRAPH_PROFILE"] == "shared"


def test_load_refuses_what_is_not_a_complete_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"build_id": "b", "files": []}))
    with pytest.raises(FileNotFoundError, match="lists no JSONL data file"):
        load(tmp_path, verify=False)
    with pytest.raises(FileNotFoundError, match="is not in the manifest"):
        load(tmp_path, file="x.jsonl", verify=False)
