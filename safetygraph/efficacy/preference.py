"""The preference recipe's efficacy: DPO with TRL's DPOTrainer (a LoRA adapter through peft) for a
bounded number of steps on ``train.jsonl``, then on ``eval.jsonl`` (held out from training):

- ``logp_accuracy_before`` / ``_after``: the share of pairs whose chosen answer the model finds
  likelier than the rejected one, before and after training;
- ``reward_accuracy`` / ``reward_margin`` (the headline): TRL's own evaluation of the trained
  policy against the frozen reference (DPO's implicit reward);
- the judge's outcome mix of the model's greedy answers to held-out questions, before and after
  (refusals of harmful requests, over-refusals of safe ones).

The control swaps chosen and rejected in a random half of the training pairs."""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass

from safetygraph.efficacy.base import EfficacyResult, EfficacySkipped, control_seed, timed
from safetygraph.efficacy.judged import Judge, answer_and_judge, outcome_mix
from safetygraph.efficacy.lm import answer_logprobs


@dataclass(frozen=True)
class PreferenceRun:
    steps: int = 10
    batch: int = 2
    learning_rate: float = 1e-3
    beta: float = 0.1
    max_length: int = 256
    lora_r: int = 8
    eval_pairs: int = 24
    questions: int = 8
    max_new_tokens: int = 48
    seed: int = 0


def _prompt_text(tok, pair: dict) -> tuple[str, str, str]:
    """(rendered prompt, chosen, rejected) of a standard or conversational pair."""
    if isinstance(pair["prompt"], list):  # conversational: lists of messages
        prompt = tok.apply_chat_template(pair["prompt"], tokenize=False, add_generation_prompt=True)
        return prompt, pair["chosen"][-1]["content"], pair["rejected"][-1]["content"]
    return pair["prompt"], pair["chosen"], pair["rejected"]


def logp_accuracy(model, tok, pairs: list[dict], max_length: int) -> float:
    items = []
    for pair in pairs:
        prompt, chosen, rejected = _prompt_text(tok, pair)
        items += [(prompt, " " + chosen), (prompt, " " + rejected)]
    lp = answer_logprobs(model, tok, items, max_length=max_length)
    return round(sum(lp[2 * i] > lp[2 * i + 1] for i in range(len(pairs))) / len(pairs), 4)


def control_pairs(pairs: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {**p, "chosen": p["rejected"], "rejected": p["chosen"]} if rng.random() < 0.5 else p
        for p in pairs
    ]


def _questions(eval_pairs: list[dict], n: int) -> list[dict]:
    out = []
    for p in eval_pairs[:n]:
        text = p.get("question") or (
            p["prompt"][-1]["content"] if isinstance(p["prompt"], list) else p["prompt"]
        )
        out.append(
            {"prompt": text, "prompt_harmful": bool((p.get("labels") or {}).get("prompt_harmful"))}
        )
    return out


def _train(model, tok, train: list[dict], run: PreferenceRun):
    """The DPO trainer after ``run.steps`` steps on ``train`` (the model wrapped in LoRA)."""
    import trl
    from datasets import Dataset
    from peft import LoraConfig

    keep = ("prompt", "chosen", "rejected")
    data = Dataset.from_list([{k: p[k] for k in keep} for p in train])
    args = trl.DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="dpo-efficacy-"),
        max_steps=run.steps,
        per_device_train_batch_size=run.batch,
        learning_rate=run.learning_rate,
        beta=run.beta,
        max_length=run.max_length,
        use_cpu=model.device.type != "cuda",
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        seed=run.seed,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=run.lora_r,
        lora_alpha=2 * run.lora_r,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )
    trainer = trl.DPOTrainer(
        model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora
    )
    trainer.train()
    return trainer


def preference_efficacy(
    model,
    tok,
    train: list[dict],
    evals: list[dict],
    judge: Judge,
    run: PreferenceRun,
    model_name: str,
    control: int = 0,
) -> EfficacyResult:
    if len(train) < run.batch or not evals:
        raise EfficacySkipped(
            f"{len(train)} training and {len(evals)} eval pairs: too few to train and measure"
        )
    evals = evals[: run.eval_pairs]
    questions = _questions(evals, run.questions)
    with timed() as t:
        before = logp_accuracy(model, tok, evals, run.max_length)
        mix_before = outcome_mix(answer_and_judge(model, tok, questions, judge, run.max_new_tokens))
        trainer = _train(
            model,
            tok,
            control_pairs(train, control_seed(run.seed, control)) if control else train,
            run,
        )
        from datasets import Dataset

        keep = ("prompt", "chosen", "rejected")
        scores = trainer.evaluate(Dataset.from_list([{k: p[k] for k in keep} for p in evals]))
        trained = trainer.model.eval()
        after = logp_accuracy(trained, tok, evals, run.max_length)
        mix_after = outcome_mix(
            answer_and_judge(trained, tok, questions, judge, run.max_new_tokens)
        )
    figures = {
        "logp_accuracy_before": before,
        "logp_accuracy_after": after,
        "logp_accuracy_gain": round(after - before, 4),
        "reward_accuracy": round(float(scores.get("eval_rewards/accuracies", 0.0)), 4),
        "reward_margin": round(float(scores.get("eval_rewards/margins", 0.0)), 4),
    }
    figures |= {f"{k}_before": v for k, v in mix_before.items() if k.endswith("rate")}
    figures |= {f"{k}_after": v for k, v in mix_after.items() if k.endswith("rate")}
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return EfficacyResult(
        recipe="preference",
        figures=figures,
        details={
            "losses": [round(x, 4) for x in losses],
            "eval_pairs": len(evals),
            "questions": len(questions),
            "outcomes_before": mix_before,
            "outcomes_after": mix_after,
        },
        model=model_name,
        steps=trainer.state.global_step,
        seconds=t[0],
        control=int(control),
        config={k: getattr(run, k) for k in run.__dataclass_fields__},
    )
