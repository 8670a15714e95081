"""Tokenizer preflight for stage-2 samples, on the rows exactly as the stage-2 files carry them
(the exporter's bytes, parsed back; nothing cleaned): every row renders with the target chat
template and tokenizes, the assistant turns are found for the loss mask, the model maker's
reference encoder accepts it (``references.py``: Meta's Llama-3 format, Mistral's), and none
exceeds ``max_seq_length`` tokens of the real tokenizer.

The tokenizer is a ``tokenizer.json`` (the ``tokenizers`` library) plus the chat template from
``tokenizer_config.json`` (or ``chat_template.jinja``, or a template file given apart), from a local
folder or a Hugging Face repo id. The template is rendered by transformers'
``apply_chat_template`` (what TRL and most trainers call) when transformers is installed; without
it, by a sandboxed Jinja environment set up as transformers sets up its own (``trim_blocks``,
``lstrip_blocks``, ``tojson``, ``raise_exception``), and the report says which one ran.

Loss mask: for each assistant turn k the conversation is rendered up to turn k with the generation
prompt (the prefix) and up to and including turn k; the characters between the two are the turn's
trained span. The rendering of the whole conversation must start with both, or the boundary is
not found. Tokens overlapping a trained span are trained; all others are masked.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from safetygraph.core.paths import DATA_ROOT

PREFLIGHT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("tokens", pa.int64()),
        pa.field("reference_tokens", pa.int64()),  # the first reference encoder's count
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
    def load(
        cls, name_or_path: str, token_env: str | None = "HF_TOKEN", template_file: str | None = None
    ) -> ChatTokenizer:
        """From a local folder, or a Hugging Face repo id (downloaded through huggingface_hub; the
        token, for gated repos, from the environment variable ``token_env``). ``template_file``
        (a ``.jinja`` file) replaces the tokenizer's own chat template."""
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
        if template_file:
            if not Path(template_file).is_file():
                raise PreflightError(f"chat template file {template_file} does not exist")
            template = Path(template_file).read_text()
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

    @property
    def renderer(self) -> str:
        """Which implementation renders the template."""
        return (
            "transformers apply_chat_template"
            if self._hf() is not None
            else "jinja (transformers not installed)"
        )

    def _hf(self):
        if getattr(self, "_hf_tok", False) is False:
            try:
                from transformers import PreTrainedTokenizerFast
            except ImportError:
                self._hf_tok = None
            else:
                self._hf_tok = PreTrainedTokenizerFast(
                    tokenizer_object=self.tokenizer,
                    chat_template=self.chat_template,
                    **{k: v for k, v in self.special.items() if v},
                )
        return self._hf_tok

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        hf = self._hf()
        if hf is not None:
            return hf.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        return self.render_jinja(messages, tools, add_generation_prompt)

    def render_jinja(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The template rendered without transformers (the fallback)."""
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


def _sample(tok: ChatTokenizer, row: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """(rendered conversation, trained character spans) of one exported row; raises."""
    msgs, tools = row["messages"], row.get("tools")
    full = tok.render(msgs, tools)
    spans = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prefix = tok.render(msgs[:k], tools, add_generation_prompt=True)
        # up to the last turn is the whole conversation: the same call, rendered once
        upto = full if k == len(msgs) - 1 else tok.render(msgs[: k + 1], tools)
        if not (upto.startswith(prefix) and full.startswith(upto)) or len(upto) == len(prefix):
            raise ValueError(f"turn {k + 1}: assistant boundary not found in the rendered template")
        spans.append((len(prefix), len(upto)))
    if not spans:
        raise ValueError("no assistant turn to train on")
    return full, spans


ROW_SCHEMA = DATA_ROOT / "schemas" / "stage2_row.schema.json"


@functools.cache
def _row_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(ROW_SCHEMA.read_text()))


@functools.cache
def _fast_validator():
    """jsonschema-rs's validator of the row schema (Draft 2020-12), or None where it is missing."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(json.loads(ROW_SCHEMA.read_text()))


def row_problems(row: dict[str, Any]) -> list[str]:
    """Where the row breaks the stage-2 row schema (``schemas/stage2_row.schema.json``), and tool
    calls to a tool the row carries no schema for. A row jsonschema-rs accepts has no schema error;
    the rows it rejects (and every row, without it) are read by jsonschema, which words the errors:
    a row is only reported when jsonschema rejects it too."""
    fast = _fast_validator()
    errors = (
        []
        if fast is not None and fast.is_valid(row)
        else sorted(
            _row_validator().iter_errors(row), key=lambda e: [str(p) for p in e.absolute_path]
        )
    )
    out = [
        f"schema: {'/'.join(str(p) for p in e.absolute_path) or '(row)'}: {e.message}"
        for e in errors[:3]
    ]
    known = {
        (t.get("function") or {}).get("name")
        for t in (row.get("tools") or [])
        if isinstance(t, dict)
    }
    for k, m in enumerate(row.get("messages") or []):
        for c in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            name = (c.get("function") or {}).get("name") if isinstance(c, dict) else None
            if name not in known:
                out.append(f"turn {k + 1}: calls {name!r}, a tool the row carries no schema for")
    return out


def preflight(
    table: pa.Table,
    tok: ChatTokenizer,
    max_seq_length: int = 2048,
    references: Sequence[Any] = (),
) -> pa.Table:
    """``preflight_rows`` on ``table``'s rows exactly as the stage-2 files carry them (the
    exporter's bytes, parsed back), in the table's order."""
    from safetygraph.recipes.circuit_breaker.records import stage2_rows

    return preflight_rows(stage2_rows(table), tok, max_seq_length, references)


def preflight_file(
    data: bytes, tok: ChatTokenizer, max_seq_length: int = 2048, references: Sequence[Any] = ()
) -> pa.Table:
    """``preflight_rows`` on the lines of a stage-2 JSONL file; a line that is not a JSON object is
    a failed row named by its line number."""
    rows = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = {
                "id": f"line {n}",
                "source": "",
                "__unreadable": f"line {n}: not JSON ({exc.msg})",
            }
        if not isinstance(row, dict):
            row = {"id": f"line {n}", "source": "", "__unreadable": f"line {n}: not a JSON object"}
        rows.append(row)
    return preflight_rows(rows, tok, max_seq_length, references)


def _check_row(
    row: dict[str, Any], tok: ChatTokenizer, references: Sequence[Any]
) -> tuple[tuple[str, list[tuple[int, int]]] | None, list[str], int | None]:
    """(rendering and trained spans or None, problems, first reference's token count) of a row."""
    if "__unreadable" in row:
        return None, [row["__unreadable"]], None
    problems = row_problems(row)
    try:
        rendered = _sample(tok, row)
    except Exception as exc:  # the template's own errors, reported per row
        rendered = None
        problems.append(f"chat template ({tok.renderer}): {type(exc).__name__}: {exc}")
    counted = None
    for k, ref in enumerate(references):
        try:
            n = ref.count(row)
            counted = n if k == 0 else counted
        except ValueError as exc:
            problems.append(f"{ref.name}: {exc}")
    return rendered, problems, counted


def _token_spans(offsets: Any, spans: list[tuple[int, int]]) -> tuple[list[list[int]], int]:
    """([start_token, end_token] of each trained span with tokens in it, trained tokens)."""
    token_spans = []
    trained = 0
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    for start, end in spans:
        inside = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
        if inside.size:
            token_spans.append([int(inside[0]), int(inside[-1]) + 1])
            trained += int(inside.size)
    return token_spans, trained


def preflight_rows(
    rows: list[dict[str, Any]],
    tok: ChatTokenizer,
    max_seq_length: int = 2048,
    references: Sequence[Any] = (),
) -> pa.Table:
    """One row per sample: tokens, trained tokens, trained token spans, the reference encoder's
    token count, and the error (null when it passed: the row follows the stage-2 row schema, the
    template renders it, the assistant boundary is found, every reference accepts it, at most
    ``max_seq_length`` tokens). Tokens are counted by the model's real tokenizer where the first
    reference brings one: the larger of its encoding of the row and its count of the template's
    rendering (which carries the tool schemas); else the chat tokenizer's count of the rendering."""
    ids = [str(r.get("id")) for r in rows]
    sources = [str(r.get("source")) for r in rows]
    checked = [_check_row(row, tok, references) for row in rows]
    rendered = [c[0] for c in checked]
    errors = [c[1] for c in checked]
    ref_tokens = [c[2] for c in checked]
    ok = [i for i, r in enumerate(rendered) if r is not None]
    encodings = tok.tokenizer.encode_batch([rendered[i][0] for i in ok], add_special_tokens=False)
    n_tokens: list[int | None] = list(ref_tokens)
    n_trained = [None] * len(ids)
    n_turns = [None] * len(ids)
    spans_out: list[str | None] = [None] * len(ids)
    for i, enc in zip(ok, encodings, strict=True):
        spans = rendered[i][1]
        token_spans, trained = _token_spans(enc.offsets, spans)
        if n_tokens[i] is None:
            n_tokens[i] = len(enc.ids)
        elif references and hasattr(references[0], "text_count"):
            # the template's rendering (tool schemas included) in the model's own tokenizer
            n_tokens[i] = max(n_tokens[i], references[0].text_count(rendered[i][0]))
        n_trained[i], n_turns[i] = trained, len(spans)
        spans_out[i] = json.dumps(token_spans)
        if trained == 0:
            errors[i].append("assistant turns found but no token falls inside them")
    over = [False] * len(ids)
    for i, n in enumerate(n_tokens):
        if n is not None and n > max_seq_length:
            errors[i].append(f"{n} tokens, over max_seq_length {max_seq_length}")
            over[i] = len(errors[i]) == 1  # renders fine, only too long
    return pa.table(
        {
            "id": ids,
            "source": sources,
            "tokens": pa.array(n_tokens, pa.int64()),
            "reference_tokens": pa.array(ref_tokens, pa.int64()),
            "trained_tokens": pa.array(n_trained, pa.int64()),
            "assistant_turns": pa.array(n_turns, pa.int64()),
            "trained_spans": spans_out,
            "over_length": over,
            "error": ["; ".join(e) if e else None for e in errors],
        },
        schema=PREFLIGHT_SCHEMA,
    )
