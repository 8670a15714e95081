"""Train the judge's classifiers, reproducibly, from public human-labelled data in ../shared/data.

    python -m safetygraph.labeling.train [--data ../shared/data] [--out config/judges]

- refusal classifier: Do-Not-Answer responses of the development models (GPT4, ChatGPT, Claude) with
  the annotators' action codes (refusal = 0 or 4, as in ``gold.py``). The other three models
  (ChatGLM2, llama2-7b-chat, vicuna-7b) are never trained on: they are the reported half.
- prompt-harm classifier: harmful instructions (refusal-direction harmful_train, AdvBench, HarmBench,
  Do-Not-Answer questions) against harmless ones (refusal-direction harmless_train, a fixed sample);
  XSTest and refusal-direction's val split are held out for evaluation, and any training prompt that
  also appears in them is dropped.

The regularisation strength is chosen by grouped 5-fold cross-validation on the training rows only.
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
from safetygraph.core.paths import REPO_ROOT
from safetygraph.labeling.classifier import (
    JUDGES_DIR,
    LinearTextModel,
    features_sql,
    normalise_sql,
)
from safetygraph.labeling.gold import REFUSAL_ACTIONS

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEV_MODELS = ("GPT4", "ChatGPT", "Claude")
ALL_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
HARMLESS_SAMPLE = 20000
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


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
        ]
    )
    held_out = f"""
        SELECT instruction AS text, TRUE AS label, 'rd_val' AS grp FROM read_json_auto('{rd / "harmful_val.json"}')
        UNION ALL SELECT instruction, FALSE, 'rd_val' FROM read_json_auto('{rd / "harmless_val.json"}')
        UNION ALL SELECT prompt, label = 'unsafe', 'xstest' FROM read_csv('{data / "xstest" / "xstest_prompts.csv"}', header=true, all_varchar=true)
    """
    con.execute(f"CREATE TABLE held AS {held_out}")
    con.execute(
        f"""CREATE TABLE train AS
        WITH h AS (SELECT DISTINCT text, TRUE AS label FROM ({harmful}) WHERE text IS NOT NULL),
        b AS (SELECT DISTINCT instruction AS text, FALSE AS label FROM read_json_auto('{rd / "harmless_train.json"}')
              ORDER BY hash(instruction), instruction LIMIT {HARMLESS_SAMPLE}),
        u AS (SELECT * FROM h UNION ALL SELECT * FROM b)
        SELECT text, label, text AS grp FROM u
        WHERE {normalise_sql("text")} NOT IN (SELECT {normalise_sql("text")} FROM held)
        ORDER BY label, text"""
    )
    return duck.query(con, "SELECT * FROM train"), duck.query(
        con, "SELECT * FROM held ORDER BY grp, text"
    )


def _matrix(rows: pa.Table, max_chars: int, ngrams: int, vocab: dict[str, int] | None, min_df: int):
    from scipy.sparse import csr_matrix

    t = rows.select(["text"]).append_column("__pos", pa.array(range(rows.num_rows), pa.int64()))
    con = duck.connect(t=t)
    f = duck.query(
        con, f"SELECT * FROM ({features_sql('t', 'text', max_chars, ngrams)}) ORDER BY __pos, feat"
    )
    pos = f.column("__pos").to_numpy()
    feats = f.column("feat").to_pylist()
    if vocab is None:
        df: dict[str, int] = {}
        for x in feats:
            df[x] = df.get(x, 0) + 1
        vocab = {x: i for i, x in enumerate(sorted(k for k, v in df.items() if v >= min_df))}
    cols, keep = [], []
    for j, x in enumerate(feats):
        i = vocab.get(x)
        if i is not None:
            cols.append(i)
            keep.append(j)
    import numpy as np

    data = np.ones(len(cols))
    m = csr_matrix(
        (data, (pos[keep], np.array(cols, dtype=np.int64))), shape=(rows.num_rows, len(vocab))
    )
    return m, vocab


def fit(
    rows: pa.Table,
    *,
    name: str,
    text: str,
    max_chars: int,
    ngrams: int,
    min_df: int = 2,
    provenance: dict[str, Any],
) -> LinearTextModel:
    """A logistic-regression model on ``rows`` (text, label, grp), C chosen by grouped 5-fold CV."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score

    x, vocab = _matrix(rows, max_chars, ngrams, None, min_df)
    y = np.array(rows.column("label").to_pylist(), dtype=bool)
    groups = rows.column("grp").to_pylist()
    scores = {}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        scores[c] = float(np.mean(cross_val_score(clf, x, y, groups=groups, cv=GroupKFold(5))))
    best = max(C_GRID, key=lambda c: (round(scores[c], 4), -c))
    clf = LogisticRegression(C=best, max_iter=5000, class_weight="balanced").fit(x, y)
    inverse = {i: f for f, i in vocab.items()}
    weights = {inverse[i]: round(float(w), 5) for i, w in enumerate(clf.coef_[0]) if abs(w) >= 1e-4}
    return LinearTextModel(
        name=name,
        text=text,
        max_chars=max_chars,
        ngrams=ngrams,
        bias=round(float(clf.intercept_[0]), 5),
        threshold=0.5,
        weights=dict(sorted(weights.items())),
        provenance={
            **provenance,
            "algorithm": "logistic regression (scikit-learn), class_weight=balanced, binary n-gram features",
            "c_grid": list(C_GRID),
            "cv_accuracy": {str(c): round(s, 4) for c, s in scores.items()},
            "c": best,
            "rows": rows.num_rows,
            "positives": int(y.sum()),
            "vocabulary": len(vocab),
        },
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m safetygraph.labeling.train", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=JUDGES_DIR, help="where the model files go")
    ap.add_argument("--which", choices=("refusal", "prompt_harm", "both"), default="both")
    args = ap.parse_args(argv)
    dna = args.data / "do-not-answer" / "data_en.csv"
    if not dna.exists():
        print(f"error: {dna} not found; pass --data with the shared data folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.which in ("refusal", "both"):
        rows = refusal_rows(args.data)
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
        digest = model.save(args.out / "refusal_classifier.json")
        print(
            f"refusal classifier: {len(model.weights)} weights, C={model.provenance['c']}, "
            f"cv accuracy {model.provenance['cv_accuracy'][str(model.provenance['c'])]}, sha256 {digest[:12]}"
        )
    if args.which in ("prompt_harm", "both"):
        train, _ = prompt_rows(args.data)
        files = [
            "refusal-direction/harmful_train.json",
            "refusal-direction/harmless_train.json",
            "harmbench/harmbench_behaviors_text_all.csv",
            "harmbench/extra_behavior_datasets/advbench_behaviors.csv",
            "do-not-answer/data_en.csv",
            "refusal-direction/harmful_val.json",
            "refusal-direction/harmless_val.json",
            "xstest/xstest_prompts.csv",
        ]
        model = fit(
            train,
            name="prompt-harm-classifier-v1",
            text="prompt",
            max_chars=300,
            ngrams=2,
            provenance={
                "task": "harmful request vs harmless request",
                "training_data": {f: sha256(args.data / f) for f in files},
                "held_out": "xstest prompts, refusal-direction val (and any training prompt equal to one of them)",
                "harmless_sample": HARMLESS_SAMPLE,
            },
        )
        digest = model.save(args.out / "prompt_harm_classifier.json")
        print(
            f"prompt-harm classifier: {len(model.weights)} weights, C={model.provenance['c']}, "
            f"cv accuracy {model.provenance['cv_accuracy'][str(model.provenance['c'])]}, sha256 {digest[:12]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
