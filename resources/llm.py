"""The LLM resource: one place that turns a generation config into a backend."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from safetygraph.generation import Backend, GenerationConfig, OpenAIBackend, ReplayBackend
from safetygraph.registry import REPO_ROOT

DEFAULT_RECORDINGS = [str(REPO_ROOT / "sample_data" / "recorded_responses.jsonl")]


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
    max_concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6

    def backend(self, config: GenerationConfig) -> Backend:
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
            )
        raise ValueError(
            f"generation config '{config.role}': unknown backend '{config.backend}' (use replay or openai)"
        )
