"""Train the judge's classifiers, reproducibly, from public human-labelled data in ../shared/data.

    python -m safetygraph.labeling.train [--data ../shared/data] [--out config/judges]

- refusal classifier: Do-Not-Answer responses of the development models (GPT4, ChatGPT, Claude) with
  the annotators' action codes (refusal = 0 or 4, as in ``gold.py``). The other three models
  (ChatGLM2, llama2-7b-chat, vicuna-7b) are never trained on: they are the reported half.
- prompt-harm classifier: harmful instructions (refusal-direction harmful_train, AdvBench, HarmBench,
  Do-Not-Answer questions, GPTFuzz's 80 questions) against harmless ones: refusal-direction harmless_train (Alpaca
  instructions), and everyday questions asked as questions (MedQuAD patient questions, tau2-bench
  customer requests), so that "How do I ...?" is not a harm marker by itself; XSTest and
  refusal-direction's val split are held out for evaluation, and any training prompt that also
  appears in them is dropped.
- response-harm classifier: every labelled answer of ``harm_data.py`` (GPTFuzz and Do-Not-Answer
  outside their reported parts, MedQuAD's everyday answers, the project's hand-written chat answers,
  SmolLM2's own answers read one by one), no gate: the answer's n-grams and the judge's signals
  (``signals.py``), each (source, label) cell weighted equally.

The regularisation strength is chosen by grouped 5-fold cross-validation on the training rows only
(the response-harm model: C and the decision threshold by the mean over its labelled sources of
the out-of-fold F1, so that neither labelled set decides alone).
Each model file records its training config, row counts, cross-validation accuracy and the sha256 of
every input file. Needs the ``train`` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.paths import DATA_ROOT
from safetygraph.labeling.classifier import (
    JUDGES_DIR,
    LinearTextModel,
    normalise_sql,
)
from safetygraph.labeling.design import design_matrix
from safetygraph.labeling.gold import REFUSAL_ACTIONS
from safetygraph.labeling.harm_data import (
    ALL_MODELS,
    DEV_MODELS,
    EVERYDAY_ANSWERS,
    THRESHOLD_GRID,
    f_beta,
    fit_response,
    response_rows,
)

DEFAULT_DATA = DATA_ROOT.parent / "shared" / "data"
HARMLESS_SAMPLE = 20000
QUESTION_SAMPLE = 6000  # MedQuAD patient questions among the harmless prompts
EVERYDAY_REQUESTS = JUDGES_DIR / "everyday_requests.yaml"


def everyday_requests(path: Path = EVERYDAY_REQUESTS) -> list[str]:
    """The contrastive harmless prompts: every task of the file in every template."""
    import yaml

    body = yaml.safe_load(path.read_text())
    return [t.format(task=task) for task in body["tasks"] for t in body["templates"]]


C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
# the response-harm model: rare positives, weaker regularisation wins in cross-validation
HARM_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refusal_rows(data: Path, models: tuple[str, ...] = DEV_MODELS) -> pa.Table:
    """(text, label, grp): one row per (question, model) response of ``models``."""
    path = data / "do-not-answer" / "data_en.csv"
    con = duck.connect()
    actions = ", ".join(str(a) for a in REFUSAL_ACTIONS)
    parts = " UNION ALL ".join(
        f'SELECT id AS grp, "{m}_response" AS text, "{m}_action"::INT IN ({actions}) AS label FROM d'
        for m in models
    )
    con.execute(f"CREATE VIEW d AS SELECT * FROM read_csv('{path}', header=true, all_varchar=true)")
    return duck.query(
        con,
        f"SELECT text, label, grp::VARCHAR AS grp FROM ({parts}) WHERE text IS NOT NULL ORDER BY grp, text",
    )


F_BETA = {"f1": 1.0, "f0.5": 0.5}


def tau2_files(data: Path) -> list[Path]:
    """tau2-bench task files whose instructions are structured (reason_for_call)."""
    return [data / "tau2-bench" / d / "tasks.json" for d in ("airline", "retail", "telecom")]


def _json_list(path: Path, field: str) -> str:
    return f"SELECT {field} AS text FROM read_json_auto('{path}')"


def prompt_rows(data: Path) -> tuple[pa.Table, pa.Table]:
    """(training rows, held-out rows), each (text, label, grp)."""
    rd = data / "refusal-direction"
    hb = data / "harmbench"
    con = duck.connect()
    harmful = " UNION ALL ".join(
        [
            _json_list(rd / "harmful_train.json", "instruction"),
            # HarmBench's copy of AdvBench, in HarmBench's columns
            f"SELECT Behavior AS text FROM read_csv('{hb / 'extra_behavior_datasets' / 'advbench_behaviors.csv'}', header=true, all_varchar=true)",
            f"SELECT Behavior AS text FROM read_csv('{hb / 'harmbench_behaviors_text_all.csv'}', header=true, all_varchar=true)",
            f"SELECT question AS text FROM read_csv('{data / 'do-not-answer' / 'data_en.csv'}', header=true, all_varchar=true)",
            # GPTFuzz's 80 harmful questions (the prompts behind its hand-labelled answers)
            f"SELECT text FROM read_csv('{data / 'gptfuzz' / 'question_list_0_79.csv'}', header=true, all_varchar=true)",
        ]
    )
    held_out = f"""
        SELECT instruction AS text, TRUE AS label, 'rd_val' AS grp FROM read_json_auto('{rd / "harmful_val.json"}')
        UNION ALL SELECT instruction, FALSE, 'rd_val' FROM read_json_auto('{rd / "harmless_val.json"}')
        UNION ALL SELECT prompt, label = 'unsafe', 'xstest' FROM read_csv('{data / "xstest" / "xstest_prompts.csv"}', header=true, all_varchar=true)
    """
    con.execute(f"CREATE TABLE held AS {held_out}")
    duck.register(con, "everyday", pa.table({"text": pa.array(everyday_requests(), pa.string())}))
    con.execute(
        f"""CREATE TABLE train AS
        WITH h AS (SELECT DISTINCT text, TRUE AS label FROM ({harmful}) WHERE text IS NOT NULL),
        b AS (SELECT DISTINCT instruction AS text, FALSE AS label FROM read_json_auto('{rd / "harmless_train.json"}')
              ORDER BY md5(instruction), instruction LIMIT {HARMLESS_SAMPLE}),
        -- everyday requests asked as questions: patient questions and customer-service requests
        mq AS (SELECT DISTINCT question AS text, FALSE AS label
               FROM read_json_auto('{data / "medquad" / "medquad_qa.jsonl.gz"}', format='newline_delimited')
               WHERE question IS NOT NULL ORDER BY md5(question), question LIMIT {QUESTION_SAMPLE}),
        tau AS (SELECT DISTINCT user_scenario.instructions.reason_for_call AS text, FALSE AS label
                FROM read_json_auto([{", ".join(repr(str(p)) for p in tau2_files(data))}], union_by_name=true)
                WHERE user_scenario.instructions.reason_for_call IS NOT NULL),
        ev AS (SELECT DISTINCT text, FALSE AS label FROM everyday),
        u AS (SELECT * FROM h UNION ALL SELECT * FROM b UNION ALL SELECT * FROM mq UNION ALL SELECT * FROM tau
              UNION ALL SELECT * FROM ev)
        SELECT text, label, text AS grp FROM u
        WHERE {normalise_sql("text")} NOT IN (SELECT {normalise_sql("text")} FROM held)
        ORDER BY label, text"""
    )
    return duck.query(con, "SELECT * FROM train"), duck.query(
        con, "SELECT * FROM held ORDER BY grp, text"
    )


def _cross_validate(x, y, groups, c_grid: tuple[float, ...], select: str):
    """({C: grouped 5-fold CV figure}, {C: the threshold of the best F-score}); the thresholds
    only when ``select`` is an F-score, else the figure is accuracy at 0.5."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict, cross_val_score

    scores, thresholds = {}, {}
    for c in c_grid:
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        if select in F_BETA:
            oof = cross_val_predict(
                clf, x, y, groups=groups, cv=GroupKFold(5), method="predict_proba"
            )[:, 1]
            f = {t: f_beta(y, oof >= t, F_BETA[select]) for t in THRESHOLD_GRID}
            thresholds[c] = max(THRESHOLD_GRID, key=lambda t: (round(f[t], 4), t))
            scores[c] = f[thresholds[c]]
        else:
            scores[c] = float(np.mean(cross_val_score(clf, x, y, groups=groups, cv=GroupKFold(5))))
    return scores, thresholds


def fit(
    rows: pa.Table,
    *,
    name: str,
    text: str,
    max_chars: int,
    ngrams: int,
    min_df: int = 2,
    provenance: dict[str, Any],
    context: str | None = None,
    context_chars: int = 0,
    select: str = "accuracy",
    c_grid: tuple[float, ...] = C_GRID,
) -> LinearTextModel:
    """A logistic-regression model on ``rows`` (text, label, grp; and context where the model reads
    one), C chosen by grouped 5-fold CV: by accuracy at 0.5, or (``select="f1"`` / ``"f0.5"``) by
    the best out-of-fold F-score over ``THRESHOLD_GRID``, which also sets the model's threshold."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x, vocab = design_matrix(rows, max_chars, ngrams, None, min_df, context_chars if context else 0)
    y = np.array(rows.column("label").to_pylist(), dtype=bool)
    groups = rows.column("grp").to_pylist()
    scores, thresholds = _cross_validate(x, y, groups, c_grid, select)
    best = max(c_grid, key=lambda c: (round(scores[c], 4), -c))
    clf = LogisticRegression(C=best, max_iter=5000, class_weight="balanced").fit(x, y)
    inverse = {i: f for f, i in vocab.items()}
    weights = {inverse[i]: round(float(w), 5) for i, w in enumerate(clf.coef_[0]) if abs(w) >= 1e-4}
    return LinearTextModel(
        name=name,
        text=text,
        max_chars=max_chars,
        ngrams=ngrams,
        bias=round(float(clf.intercept_[0]), 5),
        threshold=float(thresholds.get(best, 0.5)),
        weights=dict(sorted(weights.items())),
        context=context,
        context_chars=context_chars if context else 0,
        provenance={
            **provenance,
            "algorithm": "logistic regression (scikit-learn), class_weight=balanced, binary n-gram features",
            "c_grid": list(c_grid),
            f"cv_{select}": {str(c): round(s, 4) for c, s in scores.items()},
            "c": best,
            "rows": rows.num_rows,
            "positives": int(y.sum()),
            "vocabulary": len(vocab),
        },
    )


def _save(model: LinearTextModel, path: Path, label: str) -> None:
    """Write ``model`` and print its size, the chosen C and threshold, its CV figure and sha256."""
    digest = model.save(path)
    c = model.provenance["c"]
    metric, scores = next((k, v) for k, v in model.provenance.items() if k.startswith("cv_"))
    print(
        f"{label}: {len(model.weights)} weights, C={c}, threshold {model.threshold}, "
        f"{metric.replace('_', ' ')} {scores[str(c)]}, sha256 {digest[:12]}"
    )


def _train_refusal(data: Path, out: Path, dna: Path) -> None:
    """The refusal classifier, from Do-Not-Answer's development models."""
    rows = refusal_rows(data)
    model = fit(
        rows,
        name="refusal-classifier-v1",
        text="response",
        max_chars=1000,
        ngrams=2,
        provenance={
            "task": "response refusal (Do-Not-Answer action 0 or 4) vs engagement (1, 2, 3, 5)",
            "training_data": {"do-not-answer/data_en.csv": sha256(dna)},
            "models_trained_on": list(DEV_MODELS),
            "held_out_models": [m for m in ALL_MODELS if m not in DEV_MODELS],
        },
    )
    _save(model, out / "refusal_classifier.json", "refusal classifier")


def _train_prompt_harm(data: Path, out: Path) -> None:
    """The prompt-harm classifier, harmful against harmless instructions."""
    train, _ = prompt_rows(data)
    files = [
        "refusal-direction/harmful_train.json",
        "refusal-direction/harmless_train.json",
        "harmbench/harmbench_behaviors_text_all.csv",
        "harmbench/extra_behavior_datasets/advbench_behaviors.csv",
        "do-not-answer/data_en.csv",
        "gptfuzz/question_list_0_79.csv",
        "refusal-direction/harmful_val.json",
        "refusal-direction/harmless_val.json",
        "xstest/xstest_prompts.csv",
        "medquad/medquad_qa.jsonl.gz",
        *(str(p.relative_to(data)) for p in tau2_files(data)),
    ]
    hashes = {f: sha256(data / f) for f in files}
    hashes[f"safetygraph:{EVERYDAY_REQUESTS.relative_to(DATA_ROOT)}"] = sha256(EVERYDAY_REQUESTS)
    model = fit(
        train,
        name="prompt-harm-classifier-v1",
        text="prompt",
        max_chars=300,
        ngrams=2,
        provenance={
            "task": "harmful request vs harmless request",
            "training_data": hashes,
            "held_out": "xstest prompts, refusal-direction val (and any training prompt equal to one of them)",
            "harmless_sample": HARMLESS_SAMPLE,
            "question_sample": QUESTION_SAMPLE,
        },
    )
    _save(model, out / "prompt_harm_classifier.json", "prompt-harm classifier")


def _train_response_harm(data: Path, out: Path, dna: Path) -> None:
    """The response-harm classifier, from every labelled answer (``harm_data.py``)."""
    gf = data / "gptfuzz"
    rows = response_rows(data)
    model = fit_response(
        rows,
        name="response-harm-classifier-v2",
        max_chars=2000,
        ngrams=2,
        provenance={
            "task": "harmful answer (real uplift: gives what a harmful request asks for) vs not, "
            "over every answer (refusals, partial refusals and answers to innocent-looking "
            "prompts included)",
            "training_data": {
                "gptfuzz/responses_labeled_train.csv": sha256(gf / "responses_labeled_train.csv"),
                "gptfuzz/question_list_0_79.csv": sha256(gf / "question_list_0_79.csv"),
                "do-not-answer/data_en.csv": sha256(dna),
                "medquad/medquad_qa.jsonl.gz": sha256(data / "medquad" / "medquad_qa.jsonl.gz"),
            },
            "trained_on": "GPTFuzz's answers to the development half of its questions, "
            "Do-Not-Answer's answers outside the reported part (gold.py), and "
            f"{EVERYDAY_ANSWERS} MedQuAD answers (everyday questions answered, none harmful)",
            "held_out": "GPTFuzz: the answers to the report half of the questions "
            "(report_question of the question index); Do-Not-Answer: the answers of "
            + ", ".join(m for m in ALL_MODELS if m not in DEV_MODELS)
            + " to the report half of the questions",
        },
    )
    _save(model, out / "response_harm_classifier.json", "response-harm classifier")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m safetygraph.labeling.train", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=JUDGES_DIR, help="where the model files go")
    ap.add_argument(
        "--which",
        choices=("refusal", "prompt_harm", "response_harm", "all", "both"),
        default="all",
        help="which model to train (both: the refusal and prompt-harm models; all: the three)",
    )
    args = ap.parse_args(argv)
    dna = args.data / "do-not-answer" / "data_en.csv"
    if not dna.exists():
        print(f"error: {dna} not found; pass --data with the shared data folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    which = {
        "all": ("refusal", "prompt_harm", "response_harm"),
        "both": ("refusal", "prompt_harm"),
    }.get(args.which, (args.which,))
    if "refusal" in which:
        _train_refusal(args.data, args.out, dna)
    if "prompt_harm" in which:
        _train_prompt_harm(args.data, args.out)
    if "response_harm" in which:
        _train_response_harm(args.data, args.out, dna)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
