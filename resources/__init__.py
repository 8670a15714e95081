"""Dagster resources: build settings, Parquet storage and the LLM backends."""

from resources.io_manager import ParquetIOManager
from resources.llm import LLMResource
from resources.settings import BuildConfig

__all__ = ["BuildConfig", "LLMResource", "ParquetIOManager"]
