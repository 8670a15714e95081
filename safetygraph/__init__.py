"""safetygraph: domain logic for safety-dataset builds (plain Python over Arrow and DuckDB), the
Dagster code location (``safetygraph.location``) and a small Python API:

    import safetygraph
    result = safetygraph.build("refusal", profile="demo", out="my-export")
    ds = safetygraph.load(result["refusal"].folder)   # a datasets.Dataset, re-hashed first
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safetygraph.core.version import __version__

if TYPE_CHECKING:
    from safetygraph.api import BuildResult


def build(recipe: str = "all", **options: Any) -> BuildResult:
    """Build a recipe (``refusal``, ``circuit_breaker``, ``preference``, ``steering``, several
    comma-separated, or ``all``); see :func:`safetygraph.api.build`."""
    from safetygraph.api import build as _build

    return _build(recipe, **options)


def load(path: str, **options: Any) -> Any:
    """A build's data file read back as a ``datasets.Dataset``; see :func:`safetygraph.api.load`."""
    from safetygraph.api import load as _load

    return _load(path, **options)


__all__ = ["__version__", "build", "load"]
