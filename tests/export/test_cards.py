"""Every build of the demo carries a dataset card that huggingface_hub loads and validates and that
datasets loads config by config; ``safetygraph push`` uploads a build with its card to a stand-in
of the Hub's HTTP API (never the network), with the token only from HF_TOKEN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safetygraph.export.card import (
    CardFacts,
    hub_license,
    render_card,
    size_category,
    validate_card,
)
from tests.conftest import REPO
from tests.fake_hub import FakeHub

ROOTS = ("exports", "circuit_breaker", "preference", "steering")


@pytest.fixture(scope="module")
def demo_data(readme_demo) -> Path:
    """The README demo's data folder (one run for the session)."""
    return readme_demo.data


def _build(data: Path, root: str) -> Path:
    return data / root / (data / root / "LATEST").read_text()


@pytest.mark.parametrize("root", ROOTS)
def test_every_build_has_a_card_the_hub_library_validates(demo_data, root):
    from huggingface_hub import DatasetCard

    build = _build(demo_data, root)
    manifest = json.loads((build / "manifest.json").read_text())
    paths = {e["path"]: e for e in manifest["files"]}
    assert "README.md" in paths  # in the manifest: verify re-hashes it
    card = DatasetCard.load(build / "README.md", repo_type="dataset")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"  # every demo source is Apache-2.0
    assert data["size_categories"] == ["n<1K"] and data["task_categories"]
    assert validate_card(card.content, lambda p: p in paths) == []
    for section in (
        "## Sources",
        "## Generation models",
        "## Judge",
        "## Gates",
        "## Decontamination",
        "## Token statistics",
        "## Known limitations",
        "## How to load",
    ):
        assert section in card.text, section
    assert "demo_eval" in card.text  # the evaluation set it was decontaminated against
    assert "| no_eval_prompts_in_train |" in card.text  # the recipe's gate, with its figures
    assert str(REPO) not in card.content  # no local folder leaks into a card meant for the Hub
    # token statistics: one row per JSONL file of the configs, rows as in the manifest, also in
    # token_stats.json and the manifest
    tokens = json.loads((build / "token_stats.json").read_text())
    assert "token_stats.json" in paths and manifest["token_stats"] == tokens
    for c in data["configs"]:
        for f in c["data_files"]:
            row = next(
                line for line in card.text.splitlines() if line.startswith(f"| `{f['path']}` |")
            )
            assert int(row.split("|")[2]) == paths[f["path"]]["rows"] == tokens[f["path"]]["rows"]
            assert int(row.split("|")[3]) == tokens[f["path"]]["tokens"] > 0


def test_token_counts_are_the_tokenizers(demo_data):
    """The preference train file's tokens, counted here with the demo tokenizer itself."""
    from tokenizers import Tokenizer

    build = _build(demo_data, "preference")
    tok = Tokenizer.from_file(str(REPO / "sample_data" / "tokenizer" / "tokenizer.json"))
    rows = [json.loads(x) for x in (build / "train.jsonl").read_text().splitlines() if x.strip()]
    counts = [
        len(
            tok.encode(
                " ".join([r["prompt"], r["chosen"], r["rejected"]]), add_special_tokens=False
            ).ids
        )
        for r in rows
    ]
    stats = json.loads((build / "token_stats.json").read_text())["train.jsonl"]
    assert (stats["rows"], stats["tokens"], stats["max"]) == (len(rows), sum(counts), max(counts))


@pytest.mark.parametrize("root", ROOTS)
def test_datasets_loads_every_config_of_the_card(demo_data, root):
    import datasets
    from huggingface_hub import DatasetCard

    build = _build(demo_data, root)
    rows = {
        e["path"]: e["rows"] for e in json.loads((build / "manifest.json").read_text())["files"]
    }
    card = DatasetCard.load(build / "README.md", repo_type="dataset")
    for c in card.data.to_dict()["configs"]:
        ds = datasets.load_dataset(
            str(build), c["config_name"], cache_dir=str(build.parent / ".hf")
        )
        for f in c["data_files"]:
            assert ds[f["split"]].num_rows == rows[f["path"]], (c["config_name"], f)


def test_a_card_that_would_not_validate_is_named():
    facts = CardFacts(
        recipe="refusal",
        title="t",
        summary="s",
        profile="p",
        sources=[{"name": "a", "licence": "internal"}, {"name": "b", "licence": "MIT"}],
        configs={"default": {"train": "train.jsonl"}},
    )
    content = render_card(facts, {"train.jsonl": 10})
    assert validate_card(content, lambda p: p == "train.jsonl") == []
    assert "license_name: see-sources" in content  # 'internal' is no Hub licence: other + a name
    assert validate_card(content, lambda p: False) == [
        "config default: train.jsonl is not in the build"
    ]
    broken = content.replace("- n<1K", "- tiny")
    assert any("size_categories" in p for p in validate_card(broken))
    assert (hub_license("CC-BY-4.0"), hub_license("internal")) == ("cc-by-4.0", "other")
    assert [size_category(n) for n in (0, 999, 1000, 2_500_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1M<n<10M",
    ]


def _push(demo_data: Path, hub: FakeHub, *args: str, token: str | None = "hf_test_secret_123"):
    env = {
        **os.environ,
        "SAFETYGRAPH_BASE_URI": str(demo_data),
        "HF_ENDPOINT": hub.url,
        "DAGSTER_HOME": str(demo_data.parent / "home"),
    }
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "safetygraph", "push", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_push_uploads_the_build_with_its_card(demo_data):
    build = _build(demo_data, "preference")
    manifest = json.loads((build / "manifest.json").read_text())
    with FakeHub() as hub:
        done = _push(demo_data, hub, "preference", "--repo", "safety-org/dpo-pairs", "--private")
        assert done.returncode == 0, done.stdout + done.stderr
        repo = hub.repos["safety-org/dpo-pairs"]
        assert repo["private"] and repo["type"] == "dataset"
        expected = {e["path"] for e in manifest["files"]} | {"manifest.json"}
        assert set(repo["files"]) == expected
        for e in manifest["files"]:  # the bytes that arrived are the build's
            assert repo["files"][e["path"]] == (build / e["path"]).read_bytes()
        assert (
            hub.commits[0]["header"]["summary"]
            == f"safetygraph preference build {manifest['build_id']}"
        )
        assert set(hub.auth) == {"Bearer hf_test_secret_123"}
        # upload_folder had the Hub validate the card's metadata, as it does on huggingface.co
        assert [v["repoType"] for v in hub.validated] == ["dataset"]
        assert hub.validated[0]["content"] == (build / "README.md").read_text()
        assert "hf_test_secret_123" not in done.stdout + done.stderr
        assert f"pushed build {manifest['build_id']}" in done.stdout


def test_push_refuses_without_a_token_or_with_a_tampered_build(demo_data, tmp_path):
    with FakeHub() as hub:
        done = _push(demo_data, hub, "steering", "--repo", "o/steer", token=None)
        assert done.returncode == 1 and "set HF_TOKEN" in done.stderr
        assert hub.auth == []  # nothing was sent
    # a copy of the demo data whose card was edited after the build: the manifest no longer matches
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(demo_data / "steering", copy / "steering")
    card = _build(copy, "steering") / "README.md"
    card.write_text(card.read_text() + "\nedited\n")
    with FakeHub() as hub:
        done = _push(copy, hub, "steering", "--repo", "o/steer")
        assert done.returncode == 1 and "README.md: sha256" in done.stderr
        assert hub.commits == []
