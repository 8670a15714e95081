"""Generation configs, content-addressed requests, results and the backend contract."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from safetygraph.core.records import canonical_json, sha256_hex

BACKENDS = ("replay", "openai", "transformers", "vllm")
ANSWERS = ("prompts", "attacks")


@dataclass(frozen=True)
class GenerationConfig:
    """One way of answering prompts: a role (target, direct, teacher...), a model and its parameters.

    Only ``model``, the sampling parameters and the messages (system prompt included) decide the
    request hash; the backend does not, so the same request is answered once whatever serves it.
    """

    role: str = "target"
    backend: str = "replay"
    model: str = "demo-target"
    system_prompt: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    samples: int = 1  # samples per prompt (sample k uses seed + k)
    # prices in the currency of your choice per million tokens, for the cost estimate
    price_in_per_mtok: float | None = None
    price_out_per_mtok: float | None = None
    # vLLM engine settings (ignored by other backends); on a CPU build of vLLM
    # gpu_memory_utilization is the share of system memory it reserves, and float32 with
    # enforce_eager is what its CPU path runs
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    enforce_eager: bool = False
    # structured output: a JSON schema the answer must follow (response_format for OpenAI-compatible
    # servers, guided decoding for vLLM); part of the request, so part of its hash
    json_schema: dict | None = field(default=None, hash=False, compare=False)
    # which rows this config answers: "prompts" (rows without a response) or "attacks" (rows of an
    # attack source: the conversation up to the agent's final turn, with the tool schemas attached,
    # answered anew; adversarial-safe candidates for the circuit breaker's retain set)
    answers: str = "prompts"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"generation config '{self.role}': backend '{self.backend}' is not one of {BACKENDS}"
            )
        if self.samples < 1:
            raise ValueError(f"generation config '{self.role}': samples must be >= 1")
        if self.answers not in ANSWERS:
            raise ValueError(
                f"generation config '{self.role}': answers '{self.answers}' is not one of {ANSWERS}"
            )

    def params(self, sample: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed + sample,
        }
        if self.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "labels", "strict": True, "schema": self.json_schema},
            }
        return params

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        if self.price_in_per_mtok is None and self.price_out_per_mtok is None:
            return None
        return (
            tokens_in * (self.price_in_per_mtok or 0) + tokens_out * (self.price_out_per_mtok or 0)
        ) / 1e6

    @classmethod
    def from_dict(cls, role: str, body: dict[str, Any]) -> GenerationConfig:
        known = {f.name for f in fields(cls)} - {"role"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(
                f"generation config '{role}': unknown keys {unknown}; known: {sorted(known)}"
            )
        return cls(role=role, **body)


def request_messages(
    messages: Sequence[dict[str, Any]], system_prompt: str | None
) -> list[dict[str, Any]]:
    """The chat messages sent for a conversation, in the OpenAI chat format: its turns without null
    fields (tool calls as ``{id, type, function: {name, arguments}}``), system prompt first."""
    out = [_openai_message(m) for m in messages]
    if system_prompt and not (out and out[0]["role"] == "system"):
        out.insert(0, {"role": "system", "content": system_prompt})
    return out


def _openai_message(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in m.items() if v is not None}
    calls = out.get("tool_calls")
    if isinstance(calls, str):
        out["tool_calls"] = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {"name": c.get("name"), "arguments": c.get("arguments")},
            }
            for c in json.loads(calls)
        ]
    return out


def tool_calls_json(calls: Sequence[dict[str, Any]] | None) -> str | None:
    """OpenAI-format tool calls as the canonical ``messages.tool_calls`` string (None if none)."""
    if not calls:
        return None
    return canonical_json(
        [
            {
                "id": c.get("id"),
                "name": (c.get("function") or {}).get("name"),
                "arguments": (c.get("function") or {}).get("arguments"),
            }
            for c in calls
        ]
    )


def request_hash(model: str, params: dict[str, Any], messages: Sequence[dict[str, Any]]) -> str:
    """Content address of a request: stable across processes, machines and Python versions."""
    return sha256_hex(
        canonical_json({"model": model, "params": params, "messages": list(messages)})
    )


@dataclass
class Request:
    request_hash: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    text: str | None = None
    tool_calls: str | None = None  # canonical JSON list of {id, name, arguments}, as in messages
    error: str | None = None
    error_kind: str | None = None  # http_4xx, retries_exhausted, replay_missing, backend
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Backend(Protocol):
    """Answers requests, yielding (index into ``requests``, result) pairs as they complete, in
    batches, so the caller can checkpoint while the backend keeps working."""

    name: str

    def stream(
        self, config: GenerationConfig, requests: Sequence[Request]
    ) -> Iterator[list[tuple[int, Result]]]: ...
