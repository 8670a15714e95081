"""A small Llama-3-style tokenizer built locally with the ``tokenizers`` library: byte-level BPE
(every text tokenizes), the Llama-3 special tokens and a Llama-3-style chat template with tool
calls. For the demo profile's preflight and the tests, where no model tokenizer can be downloaded;
a real build points ``preflight_tokenizer`` at the target model's tokenizer instead.

    python -m safetygraph.recipes.circuit_breaker.demo_tokenizer OUT_DIR [CORPUS_FILE ...]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]

# Llama-3 layout: header per turn, <|eot_id|> after each; tools in the system turn; a tool call as
# {"name": ..., "parameters": ...}; tool results in the "ipython" role.
LLAMA3_STYLE_TEMPLATE = """{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
{%- set system = messages[0].content %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set system = '' %}
{%- set loop_messages = messages %}
{%- endif %}
{%- if system or tools %}
{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system }}
{%- if tools %}
{{- '\\n\\nYou can call these functions. To call one, answer with a JSON object {"name": function name, "parameters": arguments}.\\n\\n' }}
{%- for t in tools %}
{{- t | tojson(indent=2) + '\\n\\n' }}
{%- endfor %}
{%- endif %}
{{- '<|eot_id|>' }}
{%- endif %}
{%- for m in loop_messages %}
{%- if m.role == 'system' %}
{{- raise_exception('a system message is only allowed first') }}
{%- endif %}
{{- '<|start_header_id|>' + ('ipython' if m.role == 'tool' else m.role) + '<|end_header_id|>\\n\\n' }}
{%- if m.tool_calls %}
{%- for c in m.tool_calls %}
{{- '{"name": "' + c.function.name + '", "parameters": ' + (c.function.arguments | tojson) + '}' }}
{%- endfor %}
{%- else %}
{{- m.content }}
{%- endif %}
{{- '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}"""

BASE_CORPUS = [
    "You are a helpful, honest and harmless assistant.",
    "I'm sorry, but I can't help with that. Here is how to stay safe instead.",
    "Sure! Here are the steps: 1. open the file 2. read it 3. close it.",
    '{"name": "get_order", "parameters": {"order_id": "W2000"}}',
]


def build(out_dir: str | Path, corpus: Iterable[str] = (), vocab_size: int = 1000) -> Path:
    """Train the tokenizer on ``corpus`` (plus a few built-in lines) and write tokenizer.json and
    tokenizer_config.json (with the chat template) to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*BASE_CORPUS, *corpus], trainer=trainer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|end_of_text|>",
        "model_max_length": 8192,
        "chat_template": LLAMA3_STYLE_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lines: list[str] = []
    for f in sys.argv[2:]:
        lines += Path(f).read_text(encoding="utf-8").splitlines()
    print(build(sys.argv[1], lines))
