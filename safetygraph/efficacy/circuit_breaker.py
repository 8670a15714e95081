"""The circuit-breaker recipe's efficacy: representation rerouting (Zou et al., "Improving
Alignment and Robustness with Circuit Breakers"): a LoRA adapter trained for a bounded number of
steps so that on Ds (``cb_class`` harmful) the chosen layers' representations move away from the
frozen model's (loss: ReLU of their cosine similarity) while on Dr (retain) they stay close (loss:
the L2 distance), the two weighted by the paper's schedule. On ``eval.jsonl`` (held out):

- ``ds_similarity`` / ``dr_similarity``: the mean cosine similarity of the adapted model's
  representations to the frozen model's on held-out Ds and Dr (1.0 before training);
  ``similarity_gap`` = dr - ds, the rerouting carried over to harmful rows it never saw;
- ``ds_similarity_train``: the same on the Ds rows it trained on, and ``selectivity`` = held-out
  dr - trained ds: whether the files' harmful rows can be rerouted while the retain rows keep their
  representations (under permuted labels they cannot: the rerouted rows look like the kept ones);
- the judge's harmful-answer rate on the held-out harmful prompts and the answer (non-refusal) rate
  on the held-out retain prompts, before and after.

The control permutes the harmful/retain labels of the training rows."""

from __future__ import annotations

from dataclasses import dataclass

from safetygraph.efficacy.base import EfficacyResult, EfficacySkipped, control_seed, shuffled, timed
from safetygraph.efficacy.judged import Judge, answer_and_judge, outcome_mix
from safetygraph.efficacy.lm import chat_prompt


@dataclass(frozen=True)
class RerouteRun:
    steps: int = 24
    learning_rate: float = 2e-3
    alpha: float = 10.0
    layers: tuple[float, ...] = (0.33, 0.66)  # depths of the rerouted layers
    max_length: int = 160
    lora_r: int = 16
    ds_batch: int = 2  # rows of each side per step
    dr_batch: int = 4
    # the LoRA B matrices start as small noise, not peft's zeros: at the frozen model the cosine
    # is at its maximum and its gradient zero, and Adam then scales rounding noise into an
    # unselective walk that moves Dr as far as Ds (measured on SmolLM2: held-out Dr 0.94, trained
    # Ds 0.88; from noise 0.01: Dr 0.998, trained Ds 0.55)
    init_noise: float = 0.01
    eval_rows: int = 24
    questions: int = 8
    max_new_tokens: int = 48
    seed: int = 0


def _text(tok, row: dict) -> tuple[str, str]:
    """(the rendered first user turn, the last assistant answer) of a stage-2 row."""
    messages = row["messages"]
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    answer = next(
        (m["content"] for m in reversed(messages) if m["role"] == "assistant" and m.get("content")),
        "",
    )
    return chat_prompt(tok, user), answer


def _harmful(row: dict) -> bool:
    return row["cb_class"] == "harmful"


def _encode(tok, rows: list[dict], max_length: int):
    """Token ids (right-padded) and a mask over each row's answer tokens: the representations
    rerouted, kept and measured are the answer's (the prompt's first tokens carry the attention
    sink, whose activations no adapter moves)."""
    import torch

    ids, masks = [], []
    for r in rows:
        prompt, answer = _text(tok, r)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(answer, add_special_tokens=False)["input_ids"]
        a_ids = a_ids[: max(1, max_length // 2)]  # the answer keeps half the budget at least
        p_ids = p_ids[-(max_length - len(a_ids)) :]  # the prompt's end, next to the answer
        ids.append(p_ids + a_ids)
        masks.append([0] * len(p_ids) + [1] * len(a_ids))
    width = max(map(len, ids))
    pad = tok.pad_token_id or 0
    x = torch.tensor([s + [pad] * (width - len(s)) for s in ids])
    m = torch.tensor([mk + [0] * (width - len(mk)) for mk in masks], dtype=torch.float32)
    return x, m


def _reps(model, ids, layers, stats):
    """The residual stream after each of ``layers``, standardized per dimension by the frozen
    model's statistics (``stats``: (mean, std) per layer): a small model's few massive activation
    dimensions otherwise hold the cosine near 1 whatever the adapter does. Right padding: no
    attention mask is needed, the padded positions come after every real token and the losses
    mask them out."""
    hs = model(ids.to(model.device), output_hidden_states=True).hidden_states
    return [(hs[layer + 1] - mu) / sd for layer, (mu, sd) in zip(layers, stats, strict=True)]


def frozen_stats(model, tok, rows: list[dict], layers, max_length: int) -> list:
    """Per layer, the mean and standard deviation of each dimension over the answer tokens of
    ``rows`` under the frozen model."""
    import torch

    ids, mask = _encode(tok, rows, max_length)
    with torch.no_grad():
        hs = model(ids.to(model.device), output_hidden_states=True).hidden_states
    keep = mask.to(hs[0].device).bool()
    out = []
    for layer in layers:
        flat = hs[layer + 1][keep]
        out.append((flat.mean(0), flat.std(0).clamp(min=1e-3)))
    return out


def similarity(model, tok, rows: list[dict], layers, stats, max_length: int) -> float:
    """Mean token cosine similarity of the adapted and the frozen representations over ``rows``."""
    import torch

    if not rows:
        return float("nan")
    ids, mask = _encode(tok, rows, max_length)
    with torch.no_grad():
        new = _reps(model, ids, layers, stats)
        with model.disable_adapter():
            old = _reps(model, ids, layers, stats)
    sims = [
        torch.nn.functional.cosine_similarity(a, b, dim=-1) for a, b in zip(new, old, strict=True)
    ]
    m = mask.to(sims[0].device)
    return round(float(sum((s * m).sum() for s in sims) / (m.sum().clamp(min=1) * len(sims))), 6)


def _step_loss(model, ds_batch, dr_batch, layers, stats, coeffs):
    import torch

    c_s, c_r = coeffs
    (ids_s, m_s), (ids_r, m_r) = ds_batch, dr_batch
    with torch.no_grad(), model.disable_adapter():
        old_s, old_r = _reps(model, ids_s, layers, stats), _reps(model, ids_r, layers, stats)
    new_s, new_r = _reps(model, ids_s, layers, stats), _reps(model, ids_r, layers, stats)
    cos = sum(
        torch.relu(torch.nn.functional.cosine_similarity(a, b, dim=-1)) * m_s
        for a, b in zip(new_s, old_s, strict=True)
    )
    reroute = cos.sum() / (m_s.sum().clamp(min=1) * len(layers))
    dist = sum(torch.norm(a - b, dim=-1) * m_r for a, b in zip(new_r, old_r, strict=True))
    retain = dist.sum() / (m_r.sum().clamp(min=1) * len(layers))
    return c_s * reroute + c_r * retain


def _train(model, tok, ds: list[dict], dr: list[dict], layers, stats, run: RerouteRun):
    """The model wrapped in a LoRA adapter (layers up to the deepest rerouted one), trained."""
    import torch
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=run.lora_r,
        lora_alpha=run.lora_r,
        lora_dropout=0.05,  # as the paper trains; it also moves the adapter off the frozen
        # model, where the cosine is at its maximum and its gradient zero
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "up_proj",
            "down_proj",
            "gate_proj",
        ],
        layers_to_transform=list(range(max(layers) + 1)),
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, lora)
    if run.init_noise:
        gen = torch.Generator().manual_seed(run.seed)
        with torch.no_grad():
            for pname, p in peft.named_parameters():
                if "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=gen) * run.init_noise)
    peft.train()
    opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=run.learning_rate)
    losses = []
    for step in range(run.steps):
        progress = step / (2 * run.steps)
        coeffs = (run.alpha * (1 - progress), run.alpha * progress)
        loss = _step_loss(
            peft,
            _encode(tok, _cycle(ds, step, run.ds_batch), run.max_length),
            _encode(tok, _cycle(dr, step, run.dr_batch), run.max_length),
            layers,
            stats,
            coeffs,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 4))
    return peft.eval(), losses


def _cycle(rows: list[dict], step: int, size: int) -> list[dict]:
    """Step ``step``'s batch of ``size`` rows, going round ``rows``."""
    return [rows[(step * size + i) % len(rows)] for i in range(size)]


def _prompts(rows: list[dict], n: int) -> list[dict]:
    out = []
    for r in rows[:n]:
        user = next((m["content"] for m in r["messages"] if m["role"] == "user"), "")
        out.append({"prompt": user, "prompt_harmful": _harmful(r)})
    return out


def split_training(
    train: list[dict], run: RerouteRun, control: int
) -> tuple[list[dict], list[dict]]:
    """(Ds, Dr) training rows; the control deals the same rows out under permuted labels."""
    labels = [_harmful(r) for r in train]
    if control:
        labels = shuffled(labels, control_seed(run.seed, control))
    ds = [r for r, h in zip(train, labels, strict=True) if h]
    dr = [r for r, h in zip(train, labels, strict=True) if not h]
    if not ds or not dr:
        raise EfficacySkipped(
            f"the training rows hold {len(ds)} harmful and {len(dr)} retain rows: both are needed"
        )
    return shuffled(ds, run.seed), shuffled(dr, run.seed)


def _eval_sides(evals: list[dict], run: RerouteRun) -> tuple[list[dict], list[dict]]:
    eval_ds = [r for r in evals if _harmful(r)][: run.eval_rows]
    eval_dr = [r for r in evals if not _harmful(r)][: run.eval_rows]
    if not eval_ds or not eval_dr:
        raise EfficacySkipped(
            f"eval.jsonl holds {len(eval_ds)} harmful and {len(eval_dr)} retain rows: both are needed"
        )
    return eval_ds, eval_dr


def _rates(before: dict, after: dict) -> dict[str, float]:
    """The judge's harmful-answer rate (harmful prompts) and answer rate (retain prompts)."""
    out = {}
    for name, mix in (("before", before), ("after", after)):
        if "harmful_answer_rate" in mix:
            out[f"harmful_answer_rate_{name}"] = mix["harmful_answer_rate"]
        if "safe_refusal_rate" in mix:
            out[f"retain_answer_rate_{name}"] = round(1 - mix["safe_refusal_rate"], 4)
    return out


def circuit_breaker_efficacy(
    model,
    tok,
    train: list[dict],
    evals: list[dict],
    judge: Judge,
    run: RerouteRun,
    model_name: str,
    control: int = 0,
) -> EfficacyResult:
    ds, dr = split_training(train, run, control)
    eval_ds, eval_dr = _eval_sides(evals, run)
    n_layers = model.config.num_hidden_layers
    layers = sorted({min(n_layers - 1, round(d * n_layers)) for d in run.layers})
    questions = _prompts(eval_ds, run.questions // 2) + _prompts(
        eval_dr, run.questions - run.questions // 2
    )
    with timed() as t:
        mix_before = outcome_mix(answer_and_judge(model, tok, questions, judge, run.max_new_tokens))
        stats = frozen_stats(model, tok, dr[:16], layers, run.max_length)
        adapted, losses = _train(model, tok, ds, dr, layers, stats, run)
        figures = {
            "ds_similarity": similarity(adapted, tok, eval_ds, layers, stats, run.max_length),
            "dr_similarity": similarity(adapted, tok, eval_dr, layers, stats, run.max_length),
            # the rerouting on rows it trained on (held-out Ds is small where Ds is)
            "ds_similarity_train": similarity(
                adapted, tok, ds[: run.eval_rows], layers, stats, run.max_length
            ),
        }
        mix_after = outcome_mix(
            answer_and_judge(adapted, tok, questions, judge, run.max_new_tokens)
        )
    figures["similarity_gap"] = round(figures["dr_similarity"] - figures["ds_similarity"], 6)
    figures["selectivity"] = round(figures["dr_similarity"] - figures["ds_similarity_train"], 6)
    figures |= _rates(mix_before, mix_after)
    return EfficacyResult(
        recipe="circuit_breaker",
        figures=figures,
        details={
            "losses": losses,
            "layers": layers,
            "train_ds": len(ds),
            "train_dr": len(dr),
            "eval_ds": len(eval_ds),
            "eval_dr": len(eval_dr),
            "outcomes_before": mix_before,
            "outcomes_after": mix_after,
        },
        model=model_name,
        steps=len(losses),
        seconds=t[0],
        control=int(control),
        config={k: getattr(run, k) for k in run.__dataclass_fields__},
    )
