"""``safetygraph init DIR``: the user's own configuration folder, an editable copy of the packaged
profiles, registry, constitution and traits, with a README, a ``.env`` that points Dagster's tools
at it, and the ``pyproject.toml`` that makes it a Dagster project for ``dg`` and ``dagster dev``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from safetygraph.core.paths import CONFIG_FILES, PACKAGED_CONFIG
from safetygraph.core.version import __version__

LOCAL_MODULE = "safetygraph_defs"  # dg needs the project's module in the folder: it re-exports
MODULE = f"{LOCAL_MODULE}.definitions"
DEFINITIONS = '''"""This project's code location: safetygraph's, from the installed package, with the
configuration of this folder (SAFETYGRAPH_CONFIG_DIR, set in .env)."""

from safetygraph.location.definitions import defs

__all__ = ["defs"]
'''

PYPROJECT = f"""# A Dagster project on the installed safetygraph package ({__version__}): `dg check defs`,
# `dg list defs`, `dg dev`, `dg launch --assets ...` and `dagster dev` load its code location.
[project]
name = "safetygraph-config"
version = "0.0.0"
requires-python = ">=3.11"
dependencies = ["safetygraph"]

[tool.dagster]
module_name = "{MODULE}"
code_location_name = "safetygraph"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "{LOCAL_MODULE}"
defs_module = "{LOCAL_MODULE}"
code_location_target_module = "{MODULE}"
code_location_name = "safetygraph"
"""

README = """# safetygraph configuration

An editable copy of safetygraph's packaged configuration ({version}). Every `safetygraph` command
reads it when `SAFETYGRAPH_CONFIG_DIR` points here (or with `--config-dir {folder}`); a file you
delete falls back to the packaged one.

| file | what it holds |
|---|---|
| `profiles.yaml` | the profiles: sources, thresholds, recipes' settings |
| `sources.yaml` | the registry of dataset sources (one Dagster partition each) |
| `constitution.yaml` | the judge's refusal, redirect and compliance phrases |
| `traits.yaml` | the steering traits |

Relative paths in `sources.yaml` resolve against this folder; where nothing is there, against the
packaged files (so `../sample_data/...` still finds the bundled sample sources). Paths into
`../../shared/data` are the developers' checkout layout: point them at your copy of the data.

    export SAFETYGRAPH_CONFIG_DIR={folder}
    safetygraph validate
    safetygraph demo

Builds (`.safetygraph/data`) and the Dagster instance (`.dagster_home`) go into the current folder,
or `SAFETYGRAPH_HOME`. In this folder `dg check defs`, `dg list defs`, `dg dev` and `dagster dev`
load the code location (`safetygraph_defs/definitions.py` re-exports the installed one; `.env` sets
SAFETYGRAPH_CONFIG_DIR for them).
"""


class InitError(ValueError):
    """The target folder already holds a configuration."""


def init_project(folder: str | os.PathLike, force: bool = False) -> list[Path]:
    """Write the configuration copy into ``folder``; refuses to overwrite one unless ``force``."""
    target = Path(folder).expanduser().resolve()
    existing = [n for n in (*CONFIG_FILES, "pyproject.toml") if (target / n).exists()]
    if existing and not force:
        raise InitError(
            f"{target} already holds {', '.join(existing)}; edit them, choose a new folder, or "
            "pass --force to overwrite"
        )
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONFIG_FILES:
        shutil.copyfile(PACKAGED_CONFIG / name, target / name)
        written.append(target / name)
    (target / LOCAL_MODULE).mkdir(exist_ok=True)
    texts = {
        f"{LOCAL_MODULE}/__init__.py": "",
        f"{LOCAL_MODULE}/definitions.py": DEFINITIONS,
        "README.md": README.format(version=__version__, folder=target),
        "pyproject.toml": PYPROJECT,
        ".env": f"SAFETYGRAPH_CONFIG_DIR={target}\n",
    }
    for name, text in texts.items():
        (target / name).write_text(text, encoding="utf-8")
        written.append(target / name)
    return written
