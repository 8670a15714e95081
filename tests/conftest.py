"""Shared fixtures: temporary registries, the real data in ../shared/data, loopback servers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SAFETYGRAPH_SHARED_DATA", REPO.parent / "shared" / "data"))

# what each test module needs (pytest markers: pyproject's [tool.pytest.ini_options]); the modules
# not named here are fast unit tests. `make test-fast`: -m "not slow and not engine and not browser"
ENGINE_MODULES = {"test_vllm_engines", "test_transformers_backend", "test_real_model"}
BROWSER_MODULES = {"test_ui"}
SLOW_MODULES = {
    "test_backfill",
    "test_readme",
    "test_recipes",
    "test_cli",
    "test_multiprocess",
    "test_cards",
    "test_object_store",
    "test_stage2_consumers",
    "test_pipeline",
    "test_preference",
    "test_steering",
    "test_stage2",
    "test_dead_runs",
    "test_alerts",
    "test_graph",
    "test_gold",
    "test_install",
    "test_seed_flags",
    "test_seed_oracles",
    "test_efficacy",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in ENGINE_MODULES:
            item.add_marker(pytest.mark.engine)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
        if module in SLOW_MODULES | ENGINE_MODULES | BROWSER_MODULES:
            item.add_marker(pytest.mark.slow)
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@dataclass(frozen=True)
class DemoRun:
    """The README's main command run once per session: its process, its folder and data folder."""

    result: subprocess.CompletedProcess
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def latest(self, recipe_root: str) -> Path:
        """The newest build of a recipe (``circuit_breaker``, ``preference``, ...)."""
        folder = self.data / recipe_root
        return folder / (folder / "LATEST").read_text()


@pytest.fixture(scope="session")
def readme_demo(tmp_path_factory) -> DemoRun:
    """`safetygraph demo` as a user runs it (from any folder, its own instance and storage), shared
    by every test that reads what it builds (read-only: a test that edits a build copies it)."""
    root = tmp_path_factory.mktemp("readme_demo")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "home"),
        "SAFETYGRAPH_BASE_URI": str(root / "data"),
    }
    env.pop("SAFETYGRAPH_PROFILE", None)  # the default profile: demo
    result = subprocess.run(
        [sys.executable, "-m", "safetygraph", "demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(result, root)


def _shared_build_answer(body: dict) -> str:
    """The stand-in model server of the shared build: a careful teacher, a terse direct model, and
    a short answer for every other config (deterministic)."""
    question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"][:80]
    model = body.get("model", "")
    if model in ("teacher", "careful-teacher"):
        return (
            f"A careful answer about {question}: the usual causes, the treatment options, and "
            "please see a clinician if the symptoms persist or get worse."
        )
    if model in ("direct", "less-safe-direct"):
        return f"Direct answer: {question} Take the usual dose and don't bother with a doctor."
    if model == "persona-model":  # the steering config: a description, then an answer, per kind
        text = body["messages"][-1]["content"]
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        if "strongly high in" in text:  # the trait-positive description
            return f"They are excited and talkative, eager to be with friends (note {digest})."
        if "Write the one sentence" in text:
            if "excited and talkative" in text:
                return f"Let's all get together and celebrate with friends tonight! ({digest})"
            return f"Alright, I will deal with it calmly. ({digest})"
        return f"They are calm and even-tempered about it (note {digest})."
    return "Here is a short, careful answer: " + question


@pytest.fixture(scope="session")
def shared_build(tmp_path_factory) -> DemoRun:
    """`safetygraph demo --profile shared` (the real files in ../shared/data) with a stand-in model
    server on loopback answering the prompts that have no recorded answer; its Dr:Ds floor set
    aside (the stand-in answers every harmful prompt alike, so Ds holds no judged completion) and
    the steering recipe on the bundled scenarios (../shared/data has no dialogue set).
    Shared by the seeds' oracle tests (read-only)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    from tests.fake_openai import FakeOpenAI

    root = tmp_path_factory.mktemp("shared_build")
    body = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())
    body["profiles"]["shared"]["thresholds"]["retain_harmful_ratio_min"] = 0.0
    # ../shared/data has no dialogue set: the steering recipe reads the bundled scenarios
    body["profiles"]["shared"]["steering"] = {
        "sources": ["demo_scenarios"],
        "traits": ["extroversion"],
    }
    profiles = root / "profiles.yaml"
    profiles.write_text(yaml.safe_dump(body))
    with FakeOpenAI(responder=_shared_build_answer) as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(root / "home"),
            "SAFETYGRAPH_BASE_URI": str(root / "data"),
            "SAFETYGRAPH_PROFILES": str(profiles),
            "SAFETYGRAPH_OPENAI_BASE_URL": server.url,
            "SAFETYGRAPH_EXPORT_VERSION": "1.0.0",  # a release: the export seed's names
        }
        env.pop("SAFETYGRAPH_PROFILE", None)
        result = subprocess.run(
            [sys.executable, "-m", "safetygraph", "demo", "--profile", "shared"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(result, root)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


def _demo_profile() -> dict:
    return yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())["profiles"]["demo"]


def write_registry(
    folder: Path, sources: list[dict], profiles: dict | None = None, thresholds: dict | None = None
) -> tuple[Path, Path]:
    """A registry and a profiles file in ``folder``; the profile 'test' holds every source."""
    folder.mkdir(parents=True, exist_ok=True)
    reg = folder / "sources.yaml"
    reg.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    base = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())["profiles"]
    demo = base["demo"]
    names = [s["name"] for s in sources]
    # the demo's recipe sources feed the preference and steering recipes, not the refusal build
    preference = [n for n in demo["preference"]["sources"] if n in names]
    steering = [n for n in demo["steering"]["sources"] if n in names]
    body = {
        "defaults": base["defaults"],
        "test": {
            "sources": [n for n in names if n not in preference and n not in steering],
            "thresholds": {**demo["thresholds"], **(thresholds or {})},
            "generation": demo.get("generation", {}),
            "preference": {**demo["preference"], "sources": preference},
            "steering": {**demo["steering"], "sources": steering},
        },
    }
    body.update(profiles or {})
    prof = folder / "profiles.yaml"
    prof.write_text(yaml.safe_dump({"profiles": body}, sort_keys=False))
    return reg, prof


def demo_sources_copy(folder: Path, recipes: bool = False) -> list[dict]:
    """The registry's demo entries, pointing at a copy of the bundled samples inside ``folder``;
    the sources of the demo's preference and steering recipes only with ``recipes``."""
    demo = _demo_profile()
    skip = set() if recipes else {*demo["preference"]["sources"], *demo["steering"]["sources"]}
    samples = folder / "sample_data"
    shutil.copytree(REPO / "sample_data", samples, ignore=shutil.ignore_patterns("*.py"))
    entries = yaml.safe_load((REPO / "config" / "sources.yaml").read_text())["sources"]
    out = []
    for e in entries:
        if e["name"].startswith("demo_") and e["name"] not in skip:
            e = dict(e)
            rel = Path(e["location"]["path"]).relative_to("../sample_data")
            e["location"] = {"path": str(samples / rel)}
            out.append(e)
    return out


def crafted_bad_source(folder: Path) -> dict:
    """A registry entry whose file has 3 good rows and 2 broken ones: a 40% quarantine rate, so its
    blocking quarantine_rate check fails and nothing downstream of raw_samples is built."""
    f = folder / "crafted_bad.jsonl"
    f.parent.mkdir(parents=True, exist_ok=True)
    good = [
        json.dumps({"prompt": f"question {i}?", "response": f"Here is answer {i}."})
        for i in range(3)
    ]
    f.write_text("\n".join(good + ['{"prompt": "truncated', '{"response": "no prompt"}']) + "\n")
    return {
        "name": "crafted_bad",
        "kind": "local",
        "location": {"path": str(f)},
        "format": "jsonl",
        "mapping": {"prompt": "prompt", "response": "response"},
        "roles": ["benign"],
    }


def code_location_env(home: Path, registry: Path, profiles: Path, base: Path, **extra: str) -> dict:
    """The environment for a `dagster` subprocess that loads definitions.py on these files."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SAFETYGRAPH_PROFILE": "test",
        "SAFETYGRAPH_REGISTRY": str(registry),
        "SAFETYGRAPH_PROFILES": str(profiles),
        "SAFETYGRAPH_BASE_URI": str(base),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        **extra,
    }
    if "SAFETYGRAPH_ALERT_WEBHOOK_URL" not in extra:
        env.pop("SAFETYGRAPH_ALERT_WEBHOOK_URL", None)
    return env
