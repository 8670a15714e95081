"""The refusal recipe's efficacy: a refusal detector trained from the refusal export's train split
with the project's own classifier recipe (``labeling.train.fit``: binary n-grams of the answer,
logistic regression, C by grouped cross-validation), measured on the export's eval split against
the judge's labels and on human labels: the rows of the eval split that carry them (Do-Not-Answer's
``gold_refusal``), else the labelled answers the project ships. The control permutes the training
labels. Needs scikit-learn only."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.efficacy.base import EfficacyResult, EfficacySkipped, control_seed, shuffled, timed

MIN_HUMAN_ROWS = 20


def _rows(table: pa.Table) -> pa.Table:
    """text (the answer), label (the judge's response_refusal), grp (the prompt's hash)."""
    return pa.table(
        {
            "text": table["response"],
            "label": pc.struct_field(table["labels"], "response_refusal"),
            "grp": pc.struct_field(table["audit"], "prompt_hash"),
        }
    )


def human_rows(evals: pa.Table) -> tuple[pa.Table, str]:
    """(response, gold) rows with a human refusal label, and where they come from."""
    gold = [
        json.loads(m).get("gold_refusal") if m else None
        for m in evals["meta"].cast(pa.string()).to_pylist()
    ]
    have = [g is not None for g in gold]
    if sum(have) >= MIN_HUMAN_ROWS:
        part = evals.filter(pa.array(have))
        return pa.table(
            {"response": part["response"], "gold": [bool(g) for g in gold if g is not None]}
        ), "the eval split's human labels"
    from safetygraph.labeling.gold import SHIPPED_GOLD, shipped_rows

    shipped = shipped_rows()
    gold = [json.loads(m)["gold_refusal"] for m in shipped["meta"].to_pylist()]
    return pa.table(
        {"response": shipped["response"], "gold": [bool(g) for g in gold]}
    ), SHIPPED_GOLD.name


def predict(model, responses: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The detector's decision per answer (its DuckDB scoring, as the judge scores)."""
    return pc.greater_equal(model.probabilities(responses), model.threshold)


def refusal_efficacy(
    train: pa.Table, evals: pa.Table, seed: int = 0, control: int = 0
) -> EfficacyResult:
    from safetygraph.labeling.gold import binary_metrics
    from safetygraph.labeling.train import fit

    rows = _rows(train)
    positives = pc.sum(pc.cast(rows["label"], pa.int64())).as_py() or 0
    groups = len(set(rows["grp"].to_pylist()))
    if positives < 5 or rows.num_rows - positives < 5 or groups < 5 or not evals.num_rows:
        raise EfficacySkipped(
            f"the train split holds {positives} refusals and {rows.num_rows - positives} answers in "
            f"{groups} prompt groups, the eval split {evals.num_rows} rows: too few to train and measure"
        )
    if control:
        rows = rows.set_column(
            1, "label", pa.array(shuffled(rows["label"].to_pylist(), control_seed(seed, control)))
        )
    humans, human_set = human_rows(evals)
    with timed() as t:
        model = fit(
            rows, name="refusal-efficacy", text="response", max_chars=1000, ngrams=2, provenance={}
        )
        judged = binary_metrics(_rows(evals)["label"], predict(model, evals["response"]))
        human = binary_metrics(humans["gold"], predict(model, humans["response"]))
    figures = {
        "judge_accuracy": judged["accuracy"],
        "judge_f1": judged["f1"],
        "human_accuracy": human["accuracy"],
        "human_f1": human["f1"],
    }
    return EfficacyResult(
        recipe="refusal",
        figures=figures,
        details={
            "eval_vs_judge": judged,
            "vs_humans": human,
            "human_set": human_set,
            "train_rows": rows.num_rows,
            "train_refusals": positives,
            "c": model.provenance["c"],
        },
        model="logistic regression on answer n-grams (labeling.train.fit)",
        steps=0,
        seconds=t[0],
        control=int(control),
        config={"seed": seed, "max_chars": 1000, "ngrams": 2},
    )
