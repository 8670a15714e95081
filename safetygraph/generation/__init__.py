"""Response generation: content-addressed requests, a request cache with durable chunks, and the
backends that answer them (replay, OpenAI-compatible servers, transformers, vLLM)."""

from .cache import RequestCache
from .core import Backend, GenerationConfig, Request, Result, request_hash, request_messages
from .local_backends import ReplayBackend, TransformersBackend, VLLMBackend
from .openai_backend import OpenAIBackend, RateLimiter, parse_retry_after
from .runner import GenerationStats, format_progress, generate

__all__ = [
    "Backend",
    "GenerationConfig",
    "GenerationStats",
    "OpenAIBackend",
    "RateLimiter",
    "ReplayBackend",
    "Request",
    "RequestCache",
    "Result",
    "TransformersBackend",
    "VLLMBackend",
    "format_progress",
    "generate",
    "parse_retry_after",
    "request_hash",
    "request_messages",
]
