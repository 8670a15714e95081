"""Dagster resources: build settings, Parquet storage and the LLM backends."""

from safetygraph.location.resources.io_manager import ParquetIOManager
from safetygraph.location.resources.llm import LLMResource
from safetygraph.location.resources.settings import BuildConfig

__all__ = ["BuildConfig", "LLMResource", "ParquetIOManager"]
