"""The installed form (issue 34): the wheel holds the code location, its configuration, the sample
sources and the judge weights, and no generic top-level module; `safetygraph init` gives the user an
editable configuration that changes a build; the README's Python API example runs; the version is
on the command line and in every manifest and card. `.ci/wheel-check` installs the wheel into a
fresh virtual environment and runs it from an unrelated folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import yaml

import safetygraph
from tests.helpers import user_env

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_wheel_holds_the_code_location_and_no_generic_top_level_names(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("safetygraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == {"safetygraph", f"safetygraph-{metadata.version('safetygraph')}.dist-info"}
    loc = "safetygraph/location"
    for needed in (
        f"{loc}/definitions.py",
        f"{loc}/pipeline_assets/sources.py",
        f"{loc}/checks/__init__.py",
        f"{loc}/resources/io_manager.py",
        f"{loc}/sensors/alerts.py",
        f"{loc}/schemas/stage2_row.schema.json",
        f"{loc}/config/profiles.yaml",
        f"{loc}/config/sources.yaml",
        f"{loc}/config/judges/response_harm_classifier.json",
        f"{loc}/sample_data/harmful_prompts.jsonl",
        f"{loc}/sample_data/agentdojo/",
    ):
        assert needed in names or any(n.startswith(needed) for n in names), needed
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_version_on_the_command_line_and_in_manifests_and_cards(readme_demo):
    out = subprocess.run(
        [str(BIN / "safetygraph"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        out.strip()
        == f"safetygraph {metadata.version('safetygraph')}"
        == f"safetygraph {safetygraph.__version__}"
    )
    for recipe in ("exports", "preference", "steering"):
        build = readme_demo.latest(recipe)
        manifest = json.loads((build / "manifest.json").read_text())
        assert manifest["safetygraph_version"] == safetygraph.__version__, recipe
        assert (
            f"safetygraph](https://github.com/) {safetygraph.__version__}"
            in (build / "README.md").read_text()
        )
    lock = json.loads((readme_demo.latest("exports") / "manifest.json").read_text())["config_lock"]
    assert lock["packages"]["safetygraph"] == safetygraph.__version__


def test_init_and_an_edited_profile_change_a_build(tmp_path, readme_demo):
    """`safetygraph init` writes the configuration; the demo profile edited there to one steering
    trait gives a steering build with that trait only (the packaged profile builds two); data and
    the instance land in the current folder."""
    env = user_env()
    cli = str(BIN / "safetygraph")
    subprocess.run([cli, "init", "cfg"], cwd=tmp_path, env=env, check=True, capture_output=True)
    for name in ("profiles.yaml", "sources.yaml", "constitution.yaml", "traits.yaml", "README.md"):
        assert (tmp_path / "cfg" / name).is_file(), name
    again = subprocess.run(
        [cli, "init", "cfg"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert again.returncode == 2 and "already holds" in again.stderr  # never overwritten silently
    profiles = tmp_path / "cfg" / "profiles.yaml"
    body = yaml.safe_load(profiles.read_text())
    body["profiles"]["demo"]["steering"]["traits"] = ["extroversion"]
    profiles.write_text(yaml.safe_dump(body, sort_keys=False))
    run = subprocess.run(
        [cli, "--config-dir", "cfg", "build", "steering"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    root = tmp_path / ".safetygraph" / "data" / "steering"
    files = {
        f["path"]
        for f in json.loads((root / (root / "LATEST").read_text() / "manifest.json").read_text())[
            "files"
        ]
    }
    assert "seed/extroversion.jsonl" in files and not any("neuroticism" in f for f in files)
    assert (tmp_path / ".dagster_home").is_dir()
    packaged = {
        f["path"]
        for f in json.loads((readme_demo.latest("steering") / "manifest.json").read_text())["files"]
    }
    assert "seed/neuroticism.jsonl" in packaged  # the packaged profile: both traits
    missing = subprocess.run(
        [cli, "validate"],
        cwd=tmp_path,
        env={**env, "SAFETYGRAPH_CONFIG_DIR": "nowhere"},
        capture_output=True,
        text=True,
    )
    assert (
        missing.returncode == 2
        and "SAFETYGRAPH_CONFIG_DIR=nowhere: no such folder" in missing.stderr
    )


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README: the Python API example (marked <!-- api-example -->) is missing"
    return match.group(1)


def test_the_readme_python_api_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _readme_example()],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((tmp_path / "my-refusal" / "manifest.json").read_text())
    rows = next(
        f["rows"] for f in manifest["files"] if f["path"] == "processed/final_dataset.jsonl"
    )
    assert f"loaded {rows} rows" in result.stdout
    # a copy that no longer matches its manifest is refused, not loaded
    with open(tmp_path / "my-refusal" / "processed" / "final_dataset.jsonl", "a") as f:
        f.write('{"id": "tampered"}\n')
    try:
        safetygraph.load(tmp_path / "my-refusal")
    except ValueError as exc:
        assert "does not match its manifest" in str(exc)
    else:
        raise AssertionError("a tampered build was loaded")
