"""Where things are: the packaged files (configuration, sample sources, judge weights), the user's
configuration, and the folder data and the Dagster instance default to.

- ``DATA_ROOT``: the repository root in a checkout, ``safetygraph/location`` in an installed wheel;
  it holds ``config/`` (profiles, registry, constitution, traits, judge weights) and ``sample_data/``.
- ``config_dir()``: ``SAFETYGRAPH_CONFIG_DIR`` (a folder ``safetygraph init`` wrote) or the packaged
  ``config/``; ``config_file(name)`` falls back to the packaged file for one the folder lacks.
- ``home()``: ``SAFETYGRAPH_HOME`` or the current folder: builds (``.safetygraph/data``) and the
  Dagster instance (``.dagster_home``) go there, never into site-packages.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _checkout_root() -> Path | None:
    root = PACKAGE_DIR.parent
    markers = ("pyproject.toml", "definitions.py", "pipeline_assets", "config")
    return root if all((root / m).exists() for m in markers) else None


CHECKOUT_ROOT = _checkout_root()
DATA_ROOT = CHECKOUT_ROOT or PACKAGE_DIR / "location"
PACKAGED_CONFIG = DATA_ROOT / "config"
CONFIG_FILES = ("profiles.yaml", "sources.yaml", "constitution.yaml", "traits.yaml")


class ConfigDirError(ValueError):
    """SAFETYGRAPH_CONFIG_DIR names a folder that does not exist."""


def config_dir() -> Path:
    """The user's configuration folder (SAFETYGRAPH_CONFIG_DIR), else the packaged one."""
    value = os.environ.get("SAFETYGRAPH_CONFIG_DIR")
    if not value:
        return PACKAGED_CONFIG
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise ConfigDirError(
            f"SAFETYGRAPH_CONFIG_DIR={value}: no such folder; create one with `safetygraph init "
            f"{value}` or unset the variable to use the packaged configuration"
        )
    return path


def config_file(name: str) -> Path:
    """``name`` in the user's configuration folder, or the packaged file when the folder lacks it."""
    own = config_dir() / name
    return own if own.exists() else PACKAGED_CONFIG / name


def home() -> Path:
    """Where builds and the Dagster instance go: SAFETYGRAPH_HOME, else the current folder."""
    return Path(os.environ.get("SAFETYGRAPH_HOME") or os.getcwd()).expanduser().resolve()


def cache_dir() -> Path:
    """Prepared models: SAFETYGRAPH_CACHE_DIR, else ``.cache`` in the checkout (or in home())."""
    value = os.environ.get("SAFETYGRAPH_CACHE_DIR")
    return Path(value) if value else (CHECKOUT_ROOT or home()) / ".cache"


def resolve_repo_path(value: str) -> str:
    """A relative path that names a file in the current folder or among the packaged files, as that
    path; otherwise the value unchanged (an absolute path, a URI or a Hugging Face repo id)."""
    if Path(value).is_absolute() or "://" in value:
        return value
    for base in (home(), DATA_ROOT):
        if (base / value).exists():
            return str(base / value)
    return value


def resolve_data_path(value: str | Path) -> Path:
    """A configured file path: absolute as is, a relative one against the current folder when it is
    there, else against the packaged files (``sample_data/...``)."""
    path = Path(value)
    if path.is_absolute():
        return path
    own = home() / path
    return own if own.exists() else DATA_ROOT / path


def resolve_registry_path(path: str, base_dir: Path) -> str:
    """A registry's file path: absolute or a URL as is, a relative one against the registry file's
    folder; a registry copied out of the package (``safetygraph init``) still finds the bundled
    files (``../sample_data/...``) when its own folder has nothing there."""
    if "://" in path or os.path.isabs(path):
        return path
    own = (base_dir / path).resolve()
    if base_dir.resolve() != PACKAGED_CONFIG.resolve() and not _exists(own):
        packaged = (PACKAGED_CONFIG / path).resolve()
        if _exists(packaged):
            return str(packaged)
    return str(own)


def _exists(path: Path) -> bool:
    return path.exists() or (any(c in str(path) for c in "*?[") and bool(glob.glob(str(path))))
