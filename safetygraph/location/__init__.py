"""The Dagster code location: ``safetygraph.location.definitions`` (``defs``), its assets
(``pipeline_assets``), checks, resources, sensors and schemas.

In a checkout these live at the repository root, the layout the design asks for; this package's
path is extended to the root so they import as ``safetygraph.location.<name>`` there too. In the
wheel, setuptools installs them here (``setup.py`` maps the folders with ``package_dir`` and
copies ``definitions.py``), so nothing with a generic top-level name (``checks``, ``resources``,
``schemas``) is installed into site-packages.
"""

from __future__ import annotations

from safetygraph.core.paths import CHECKOUT_ROOT

if CHECKOUT_ROOT is not None:
    __path__.append(str(CHECKOUT_ROOT))  # noqa: F821 (a package's own __path__)

MODULE = "safetygraph.location.definitions"
