"""The model makers' own reference encoders, for the preflight: Meta's Llama-3 chat format and
tokenizer (``llama-models``) and Mistral's request validation and encoding (``mistral-common``).

Each takes one exported stage-2 row (transformers chat convention) and returns its token count, or
raises ``ReferenceRejected`` with the library's own message. The row is only handed over in the
library's types (``RawMessage`` / ``ChatCompletionRequest.from_openai``); the encoding is theirs.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

MISTRAL_VERSIONS = ("v1", "v2", "v3", "v3-tekken", "v7")
TARGETS = ("llama3", *(f"mistral-{v}" for v in MISTRAL_VERSIONS))


class ReferenceRejected(ValueError):
    pass


class Llama3Reference:
    """Meta's reference Llama-3 chat format (``llama_models.llama3.chat_format``) with Meta's
    tiktoken tokenizer: bos, then each message as the reference encodes it (tool calls in the
    JSON tool-prompt format). Tool schemas are not encoded: llama-models 0.3 ships no generator for
    the tool-definition system prompt, so the count covers the conversation only."""

    name = "llama3 reference (llama-models)"

    @cached_property
    def _format(self):
        try:
            from llama_models.llama3.chat_format import ChatFormat
            from llama_models.llama3.tokenizer import Tokenizer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ReferenceRejected(
                f"llama-models is not installed ({exc}): pip install llama-models"
            ) from exc
        return ChatFormat(Tokenizer.get_instance())

    def text_count(self, text: str) -> int:
        """Meta's Llama-3 tokenizer's count of a rendered chat template (special tokens as such)."""
        return len(self._format.tokenizer.encode(text, bos=False, eos=False, allowed_special="all"))

    def count(self, row: dict[str, Any]) -> int:
        from llama_models.datatypes import RawMessage, ToolCall, ToolPromptFormat
        from pydantic import ValidationError

        fmt = self._format
        tokens = [fmt.tokenizer.special_tokens["<|begin_of_text|>"]]
        for k, m in enumerate(row["messages"]):
            calls = []
            for c in m.get("tool_calls") or []:
                args = c.get("function", {}).get("arguments")
                if not isinstance(args, dict):
                    raise ReferenceRejected(
                        f"turn {k + 1}: tool call arguments must be a JSON object for the Llama-3 "
                        f"format, got {type(args).__name__}"
                    )
                name = (c.get("function") or {}).get("name")
                if not isinstance(c.get("id"), str) or not name:
                    raise ReferenceRejected(f"turn {k + 1}: tool call without an id or a name")
                try:
                    calls.append(ToolCall(call_id=c["id"], tool_name=name, arguments=args))
                except ValidationError:
                    # llama-models 0.3 types arguments as at most two levels of JSON values (its
                    # own comment marks the dict form for deprecation); deeper objects (a list of
                    # flights) are valid JSON arguments, which its encoder writes with json.dumps
                    calls.append(
                        ToolCall.model_construct(call_id=c["id"], tool_name=name, arguments=args)
                    )
            try:
                msg = RawMessage(
                    role=m.get("role"), content=m.get("content") or "", tool_calls=calls
                )
            except ValidationError as exc:
                raise ReferenceRejected(f"turn {k + 1}: {exc.errors()[0]['msg']}") from exc
            toks, _ = fmt.encode_message(msg, ToolPromptFormat.json)
            tokens.extend(toks)
        return len(tokens)


class MistralReference:
    """Mistral's reference validation and encoding (``mistral_common``) in finetuning mode:
    ``ChatCompletionRequest.from_openai`` then ``MistralTokenizer.encode_chat_completion``."""

    def __init__(self, version: str = "v3"):
        if version not in MISTRAL_VERSIONS:
            raise ValueError(
                f"mistral version {version!r}: use one of {', '.join(MISTRAL_VERSIONS)}"
            )
        self.version = version
        self.name = f"mistral-{version} reference (mistral-common)"

    @cached_property
    def _tokenizer(self):
        from mistral_common.protocol.instruct.validator import ValidationMode
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        base = {
            "v1": MistralTokenizer.v1,
            "v2": MistralTokenizer.v2,
            "v3": MistralTokenizer.v3,
            "v3-tekken": lambda: MistralTokenizer.v3(is_tekken=True),
            "v7": MistralTokenizer.v7,
        }[self.version]()
        path = base.instruct_tokenizer.tokenizer.file_path
        return MistralTokenizer.from_file(str(path), mode=ValidationMode.finetuning)

    def count(self, row: dict[str, Any]) -> int:
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        try:
            request = ChatCompletionRequest.from_openai(
                messages=row["messages"], tools=row.get("tools")
            )
            return len(self._tokenizer.encode_chat_completion(request).tokens)
        except Exception as exc:  # the library's validation and encoding errors, per row
            raise ReferenceRejected(f"{type(exc).__name__}: {exc}") from exc


def reference_for(target: str):
    """The reference encoder for a preflight target: ``llama3`` or ``mistral-<version>``."""
    if target == "llama3":
        return Llama3Reference()
    if target.startswith("mistral-"):
        return MistralReference(target.removeprefix("mistral-"))
    raise ValueError(f"preflight target {target!r}: use one of {', '.join(TARGETS)}")
