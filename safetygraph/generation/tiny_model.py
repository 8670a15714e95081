"""A tiny random Llama for the real-engine tests, the engine benchmark and the ``local-vllm``
profile: built offline and deterministically from the committed demo tokenizer (byte-level BPE,
Llama-3 special tokens, a Llama-3-style chat template with tools) and a seeded random model small
enough for a CPU (hidden 128, 2 layers, 2 heads of 64, 1 KV head: the smallest head size vLLM's
CPU attention takes). Its words are noise; its shapes, template and tokenizer are real.

    python -m safetygraph.generation.tiny_model [OUT_DIR]    # default .cache/tiny-llama

Needs torch and transformers (the ``hf`` extra)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from safetygraph.core.paths import DATA_ROOT, cache_dir

DEFAULT_DIR = cache_dir() / "tiny-llama"
TOKENIZER_DIR = DATA_ROOT / "sample_data" / "tokenizer"


def build(out_dir: str | Path = DEFAULT_DIR, seed: int = 0) -> Path:
    """Write the model and tokenizer to ``out_dir`` (replaced if present) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_DIR / name, tmp / name)
    tok = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    vocab = {**tok["model"]["vocab"], **{t["content"]: t["id"] for t in tok["added_tokens"]}}
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=max(vocab.values()) + 1,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=vocab["<|begin_of_text|>"],
        eos_token_id=vocab["<|eot_id|>"],
        pad_token_id=vocab["<|end_of_text|>"],
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DIR))
