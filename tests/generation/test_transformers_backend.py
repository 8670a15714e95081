"""The transformers backend generating for real with a tiny random Llama and a tokenizer the test
builds itself (no downloads). Skipped where torch/transformers are not installed (the `hf` extra)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetygraph.generation import GenerationConfig, TransformersBackend, generate  # noqa: E402
from tests.helpers import raw_table  # noqa: E402

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
WORDS = [
    "how",
    "do",
    "i",
    "bake",
    "bread",
    "cook",
    "soup",
    "why",
    "is",
    "the",
    "sky",
    "blue",
    "what",
    "a",
    "good",
    "day",
    "plan",
    "trip",
    "to",
    "rome",
    "you",
    "are",
    "helpful",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llama")
    specials = [
        "<|pad|>",
        "<|unk|>",
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
    ]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS + ["system", "user", "assistant"])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        additional_special_tokens=specials[4:],
    )
    tok.chat_template = LLAMA3_TEMPLATE
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=vocab["<|pad|>"],
        bos_token_id=vocab["<|begin_of_text|>"],
        eos_token_id=vocab["<|eot_id|>"],
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


def test_batched_generation_with_left_padding_matches_one_at_a_time(tiny_model):
    prompts = [
        "how do i bake bread",
        "why",
        "what a good day to plan a trip to rome",
        "cook soup",
        "is the sky blue",
        "how",
    ]
    cfg = GenerationConfig(
        backend="transformers", model=tiny_model, max_tokens=6, system_prompt="you are helpful"
    )
    batched, stats = generate(
        raw_table(prompts), [cfg], lambda c: TransformersBackend(device="cpu", batch_size=4)
    )
    single, _ = generate(
        raw_table(prompts), [cfg], lambda c: TransformersBackend(device="cpu", batch_size=1)
    )
    assert batched.column("response").to_pylist() == single.column("response").to_pylist()
    assert all(isinstance(r, str) for r in batched.column("response").to_pylist())
    assert stats.generated == 6 and stats.errors == {}
    assert 6 <= stats.tokens_out <= 36 and stats.tokens_in > 6 * 10  # template tokens were counted
    assert all(
        json_model == tiny_model for json_model in batched.column("generation_model").to_pylist()
    )
