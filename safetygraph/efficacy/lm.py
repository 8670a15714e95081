"""The model measurements the efficacy runs share: chat prompts as the model's own template renders
them, answer log-probabilities, greedy answers, and hidden states at chosen layers."""

from __future__ import annotations

from collections.abc import Sequence


def chat_prompt(tok, user: str, system: str | None = None) -> str:
    """``user`` (and ``system``) rendered by the tokenizer's chat template, ready for the answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def answer_logprobs(
    model, tok, items: Sequence[tuple[str, str]], max_length: int = 512, batch: int = 16
) -> list[float]:
    """Per (prompt, answer), log p(answer | prompt) under ``model``: the sum over the answer's
    tokens, in right-padded batches."""
    import torch

    out: list[float] = []
    for i in range(0, len(items), batch):
        seqs, spans = [], []
        for prompt, answer in items[i : i + batch]:
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            a_ids = tok(answer, add_special_tokens=False)["input_ids"]
            ids = (p_ids + a_ids)[-max_length:]
            seqs.append(ids)
            spans.append(min(len(a_ids), len(ids) - 1))
        width = max(map(len, seqs))
        pad = tok.pad_token_id or 0
        x = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=model.device)
        mask = torch.tensor(
            [[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=model.device
        )
        with torch.no_grad():
            logp = torch.log_softmax(model(x, attention_mask=mask).logits[:, :-1].float(), dim=-1)
        picked = logp.gather(2, x[:, 1:, None])[..., 0]
        for row, (s, n) in enumerate(zip(seqs, spans, strict=True)):
            out.append(float(picked[row, len(s) - 1 - n : len(s) - 1].sum()))
    return out


def greedy_answers(
    model, tok, prompts: Sequence[str], max_new_tokens: int, batch: int = 8
) -> list[str]:
    """Greedy answers to ``prompts`` (already rendered), left-padded in batches."""
    import torch

    tok.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(prompts), batch):
        enc = tok(
            list(prompts[i : i + batch]),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        new = gen[:, enc["input_ids"].shape[1] :]
        out += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    return out
