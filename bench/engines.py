"""Generation engines on the same tiny model and prompt set, in one run: the vllm backend (vLLM's
offline engine), the batched transformers backend, and a one-prompt-at-a-time transformers loop
(the way the S3 seed generated).

    python bench/engines.py [--prompts 64] [--max-tokens 64] [--model DIR]

Without --model it builds the tiny random Llama (safetygraph.generation.tiny_model). Needs torch,
transformers and vLLM (on CPU: README, real engines on CPU). Prints tokens/s per engine and the
ratios to the one-at-a-time loop; last line a JSON object. Target on CPU: vllm >= 5x the loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.core.records import prompt_table as raw_table  # noqa: E402
from safetygraph.generation import (  # noqa: E402
    GenerationConfig,
    TransformersBackend,
    VLLMBackend,
    generate,
)
from safetygraph.generation.tiny_model import build  # noqa: E402

CPU = {
    "dtype": "float32",
    "enforce_eager": True,
    "gpu_memory_utilization": 0.1,
    "max_model_len": 4096,
}


def run(name, config, backend, prompts) -> dict:
    table = raw_table(prompts)
    t0 = time.perf_counter()
    _, stats = generate(table, [config], lambda c: backend)
    seconds = time.perf_counter() - t0
    out = {
        "engine": name,
        "prompts": len(prompts),
        "tokens_out": stats.tokens_out,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(stats.tokens_out / seconds, 1),
        "errors": stats.errors,
    }
    print(
        f"{name:<28} {out['tokens_out']:>6} tokens in {seconds:7.2f}s  {out['tokens_per_second']:>9,.1f} tokens/s"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--model", default=None, help="a local model folder (default: the tiny Llama)"
    )
    parser.add_argument("--device", default="cpu", help="transformers device (cpu, cuda)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-engines-") as tmp:
        model = args.model or str(build(Path(tmp) / "tiny-llama"))
        prompts = [
            f"Question {i}: explain how to plan a trip to city number {i}."
            for i in range(args.prompts)
        ]
        engine_args = CPU if args.device == "cpu" else {}
        vllm_cfg = GenerationConfig(
            backend="vllm", model=model, max_tokens=args.max_tokens, **engine_args
        )
        hf_cfg = GenerationConfig(backend="transformers", model=model, max_tokens=args.max_tokens)
        vllm = VLLMBackend()
        # warm-up: engine start and model load are not generation
        generate(raw_table(prompts[:2]), [vllm_cfg], lambda c: vllm)
        batched = TransformersBackend(device=args.device, batch_size=args.prompts)
        single = TransformersBackend(device=args.device, batch_size=1)
        generate(raw_table(prompts[:2]), [hf_cfg], lambda c: batched)
        results = [
            run("vllm backend", vllm_cfg, vllm, prompts),
            run("transformers, batched", hf_cfg, batched, prompts),
            run("transformers, one at a time", hf_cfg, single, prompts),
        ]
    base = results[2]["tokens_per_second"] or 1e-9
    ratios = {r["engine"]: round(r["tokens_per_second"] / base, 2) for r in results}
    print("ratio to one-at-a-time: " + ", ".join(f"{k} {v}x" for k, v in ratios.items()))
    print(
        json.dumps(
            {
                "results": results,
                "ratios_to_one_at_a_time": ratios,
                "target": {"vllm_vs_one_at_a_time": 5.0, "met": ratios["vllm backend"] >= 5.0},
            }
        )
    )


if __name__ == "__main__":
    main()
