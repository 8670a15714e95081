"""Packaging of the code location (pyproject.toml holds the metadata).

The repository keeps the design's top-level layout (``definitions.py``, ``pipeline_assets/``,
``checks/``, ``resources/``, ``sensors/``, ``schemas/``, ``config/``, ``sample_data/``). The wheel
installs all of it under ``safetygraph/location/``, so no generic top-level name (``checks``,
``resources``, ``schemas``) lands in site-packages: the folders are mapped with ``package_dir`` and
``build_py`` copies ``definitions.py`` and the data folders beside them. In a checkout (an editable
install) ``safetygraph/location/__init__.py`` extends its path to the repository root instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

LOCATION_FOLDERS = ("pipeline_assets", "checks", "resources", "sensors", "schemas")
DATA_FOLDERS = ("config", "sample_data")
LOCATION = "safetygraph.location"


class BuildWithLocation(build_py):
    """build_py, plus ``definitions.py`` and the data folders copied into safetygraph/location."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the editable finder reads them from the checkout
            return
        target = Path(self.build_lib, *LOCATION.split("."))
        target.mkdir(parents=True, exist_ok=True)
        self.copy_file("definitions.py", str(target / "definitions.py"))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        for folder in DATA_FOLDERS:
            shutil.copytree(folder, target / folder, ignore=ignore, dirs_exist_ok=True)


location_packages = [
    f"{LOCATION}.{name}" for name in find_packages(include=[f"{f}*" for f in LOCATION_FOLDERS])
]
setup(
    packages=find_packages(include=["safetygraph*"]) + location_packages,
    package_dir={
        **{f"{LOCATION}.{name}": name for name in LOCATION_FOLDERS},
    },
    package_data={f"{LOCATION}.schemas": ["*.json", "*.md"]},
    cmdclass={"build_py": BuildWithLocation},
)
