"""Tokenizer preflight for stage-2 samples: every sample renders with the target chat template and
tokenizes, the assistant turns are found for the loss mask, none exceeds ``max_seq_length``, and the
tool JSON (schemas and call arguments) parses.

The tokenizer is a ``tokenizer.json`` (the ``tokenizers`` library) plus the chat template from
``tokenizer_config.json`` (or ``chat_template.jinja``), from a local folder or a Hugging Face repo
id. Templates are rendered the way transformers renders them (sandboxed Jinja, ``trim_blocks``,
``lstrip_blocks``, ``tojson``, ``raise_exception``), so torch and transformers are not needed.

Loss mask: for each assistant turn k the conversation is rendered up to turn k with the generation
prompt (the prefix) and up to and including turn k; the characters between the two are the turn's
trained span. The rendering of the whole conversation must start with both, or the boundary is
not found. Tokens overlapping a trained span are trained; all others are masked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

PREFLIGHT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("tokens", pa.int64()),
        pa.field("trained_tokens", pa.int64()),
        pa.field("assistant_turns", pa.int64()),
        pa.field("trained_spans", pa.string()),  # JSON [[start_token, end_token], ...]
        pa.field("over_length", pa.bool_()),  # renders fine but has more than max_seq_length tokens
        pa.field("error", pa.string()),  # null when the sample passed
    ]
)


class PreflightError(ValueError):
    """A tokenizer that cannot be loaded or has no chat template; the message names the fix."""


def _environment():
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators=None,
        sort_keys: bool = False,
    ):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


@dataclass
class ChatTokenizer:
    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str
    special: dict[str, str]
    name: str

    @classmethod
    def load(cls, name_or_path: str, token_env: str | None = "HF_TOKEN") -> ChatTokenizer:
        """From a local folder, or a Hugging Face repo id (downloaded through huggingface_hub; the
        token, for gated repos, from the environment variable ``token_env``)."""
        from tokenizers import Tokenizer

        path = Path(name_or_path)
        if path.is_dir():
            files = {
                n: path / n
                for n in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
            }
            files = {n: p for n, p in files.items() if p.exists()}
        elif path.exists():
            raise PreflightError(f"tokenizer {name_or_path}: expected a folder with tokenizer.json")
        else:
            files = _download(name_or_path, os.environ.get(token_env) if token_env else None)
        if "tokenizer.json" not in files:
            raise PreflightError(
                f"tokenizer {name_or_path}: no tokenizer.json; point preflight_tokenizer at a folder "
                "or repo with a fast tokenizer"
            )
        config = (
            json.loads(files["tokenizer_config.json"].read_text())
            if "tokenizer_config.json" in files
            else {}
        )
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        if "chat_template.jinja" in files:
            template = files["chat_template.jinja"].read_text()
        if not template:
            raise PreflightError(
                f"tokenizer {name_or_path}: no chat template (tokenizer_config.json chat_template or "
                "chat_template.jinja); the preflight needs the template the model is trained with"
            )

        def token(v: Any) -> str:
            return v.get("content", "") if isinstance(v, dict) else (v or "")

        special = {
            k: token(config.get(k)) for k in ("bos_token", "eos_token", "pad_token", "unk_token")
        }
        return cls(
            Tokenizer.from_file(str(files["tokenizer.json"])), template, special, name_or_path
        )

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        if getattr(self, "_compiled", None) is None:  # compile once per tokenizer
            self._compiled = _environment().from_string(self.chat_template)
        return self._compiled.render(
            messages=messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            **self.special,
        )


def _download(repo_id: str, token: str | None) -> dict[str, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    out = {}
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        try:
            out[name] = Path(hf_hub_download(repo_id, name, token=token))
        except EntryNotFoundError:
            continue
        except Exception as exc:  # offline, gated, unknown repo
            if name == "tokenizer.json":
                raise PreflightError(
                    f"tokenizer {repo_id}: cannot download ({type(exc).__name__}: {exc}); use a local "
                    "folder or set the token environment variable for a gated repo"
                ) from exc
    return out


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canonical messages in the shape chat templates expect: tool calls as
    ``{id, type, function: {name, arguments: dict}}``. Raises ValueError on unparseable tool JSON."""
    out = []
    for k, m in enumerate(messages):
        msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            try:
                calls = json.loads(m["tool_calls"])
            except json.JSONDecodeError as exc:
                raise ValueError(f"turn {k + 1}: tool calls are not JSON ({exc.msg})") from exc
            msg["tool_calls"] = []
            for c in calls:
                try:
                    args = json.loads(c.get("arguments") or "{}")
                except (json.JSONDecodeError, TypeError) as exc:
                    raise ValueError(
                        f"turn {k + 1}: arguments of {c.get('name')} are not JSON: {str(c.get('arguments'))[:80]}"
                    ) from exc
                if not isinstance(args, dict):
                    raise ValueError(
                        f"turn {k + 1}: arguments of {c.get('name')} are not an object"
                    )
                msg["tool_calls"].append(
                    {
                        "id": c.get("id"),
                        "type": "function",
                        "function": {"name": c.get("name"), "arguments": args},
                    }
                )
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _sample(
    tok: ChatTokenizer, messages: list[dict], tools_json: str | None
) -> tuple[str, list[tuple[int, int]]]:
    """(rendered conversation, trained character spans) of one sample; raises ValueError."""
    tools = None
    if tools_json:
        try:
            tools = json.loads(tools_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"tool schemas are not JSON ({exc.msg})") from exc
    msgs = template_messages(messages)
    full = tok.render(msgs, tools)
    spans = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prefix = tok.render(msgs[:k], tools, add_generation_prompt=True)
        upto = tok.render(msgs[: k + 1], tools)
        if not (upto.startswith(prefix) and full.startswith(upto)) or len(upto) == len(prefix):
            raise ValueError(f"turn {k + 1}: assistant boundary not found in the rendered template")
        spans.append((len(prefix), len(upto)))
    if not spans:
        raise ValueError("no assistant turn to train on")
    return full, spans


def preflight(table: pa.Table, tok: ChatTokenizer, max_seq_length: int = 2048) -> pa.Table:
    """One row per sample: tokens, trained tokens, trained token spans, and the error (null when it
    passed: renders, boundary found, tool JSON parses, at most ``max_seq_length`` tokens)."""
    ids = table.column("id").to_pylist()
    sources = table.column("source").to_pylist()
    messages = table.column("messages").to_pylist()
    tools = table.column("tools").to_pylist()
    rendered: list[tuple[str, list[tuple[int, int]]] | None] = []
    errors: list[str | None] = []
    for msgs, tj in zip(messages, tools, strict=True):
        try:
            rendered.append(_sample(tok, msgs, tj))
            errors.append(None)
        except Exception as exc:  # template errors included: reported per sample
            rendered.append(None)
            errors.append(
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            )
    ok = [i for i, r in enumerate(rendered) if r is not None]
    encodings = tok.tokenizer.encode_batch([rendered[i][0] for i in ok], add_special_tokens=False)
    n_tokens = [None] * len(ids)
    n_trained = [None] * len(ids)
    n_turns = [None] * len(ids)
    spans_out: list[str | None] = [None] * len(ids)
    over = [False] * len(ids)
    for i, enc in zip(ok, encodings, strict=True):
        spans = rendered[i][1]
        token_spans = []
        trained = 0
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        for start, end in spans:
            inside = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
            if inside.size:
                token_spans.append([int(inside[0]), int(inside[-1]) + 1])
                trained += int(inside.size)
        n_tokens[i], n_trained[i], n_turns[i] = len(enc.ids), trained, len(spans)
        spans_out[i] = json.dumps(token_spans)
        if trained == 0:
            errors[i] = "assistant turns found but no token falls inside them"
        elif len(enc.ids) > max_seq_length:
            errors[i] = f"{len(enc.ids)} tokens, over max_seq_length {max_seq_length}"
            over[i] = True
    return pa.table(
        {
            "id": ids,
            "source": sources,
            "tokens": pa.array(n_tokens, pa.int64()),
            "trained_tokens": pa.array(n_trained, pa.int64()),
            "assistant_turns": pa.array(n_turns, pa.int64()),
            "trained_spans": spans_out,
            "over_length": over,
            "error": errors,
        },
        schema=PREFLIGHT_SCHEMA,
    )
