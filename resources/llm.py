"""The LLM resource: one place that turns a generation config into a backend."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from safetygraph.core.paths import DATA_ROOT
from safetygraph.generation import (
    Backend,
    GenerationConfig,
    OpenAIBackend,
    ReplayBackend,
    TransformersBackend,
    VLLMBackend,
)

DEFAULT_RECORDINGS = [str(DATA_ROOT / "sample_data" / "recorded_responses.jsonl")]


class LLMResource(ConfigurableResource):
    """Backends for generation and LLM judging. The API key comes from the environment (EnvVar)."""

    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1"
    )
    api_key: str | None = Field(default=None, description="Set from an EnvVar; never logged")
    recordings: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RECORDINGS),
        description="JSONL recordings for the replay backend",
    )
    max_concurrency: int = Field(default=16, description="openai: requests in flight")
    requests_per_minute: float | None = Field(
        default=None, description="openai: client-side rate limit"
    )
    tokens_per_minute: float | None = Field(
        default=None, description="openai: client-side token rate limit (estimated)"
    )
    timeout_s: float = 120.0
    max_retries: int = 6
    transformers_device: str = Field(
        default="auto", description="transformers: auto, cpu, cuda, cuda:N"
    )
    transformers_batch_size: int = 16
    vllm_batch_size: int = 1024
    _backends: dict[str, Any] = PrivateAttr(default_factory=dict)

    def backend(self, config: GenerationConfig) -> Backend:
        if config.backend not in self._backends:
            self._backends[config.backend] = self._make(config)
        return self._backends[config.backend]

    def _make(self, config: GenerationConfig) -> Backend:
        if config.backend == "replay":
            return ReplayBackend(self.recordings)
        if config.backend == "openai":
            if not self.openai_base_url:
                raise ValueError(
                    f"generation config '{config.role}' uses the openai backend but no base URL is set; "
                    "export SAFETYGRAPH_OPENAI_BASE_URL"
                )
            return OpenAIBackend(
                base_url=self.openai_base_url,
                api_key=self.api_key,
                max_concurrency=self.max_concurrency,
                timeout_s=self.timeout_s,
                max_retries=self.max_retries,
                requests_per_minute=self.requests_per_minute,
                tokens_per_minute=self.tokens_per_minute,
            )
        if config.backend == "transformers":
            return TransformersBackend(
                device=self.transformers_device, batch_size=self.transformers_batch_size
            )
        return VLLMBackend(batch_size=self.vllm_batch_size)
