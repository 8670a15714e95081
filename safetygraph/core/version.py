"""The installed package's version (``0+unknown`` in a checkout that was never installed): a
module of its own so that the core can name it without importing the package's API."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("safetygraph")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
