"""The response-harm models' training data and fit (``python -m safetygraph.labeling.train``).

Labelled answers, each from ../shared/data or the project's own labelled files:
- GPTFuzz: hand-labelled answers to 80 harmful questions under jailbreak templates (development
  half of the questions; the report half is held out, as ``gold.py`` splits the registry source);
- Do-Not-Answer: six models' answers with the human ``harmful`` label (outside the reported part);
- MedQuAD: everyday questions answered (none harmful);
- ``config/judges/training/chat_answers_*.jsonl``: the project's hand-written plain-chat answers;
- ``config/judges/training/small_model_answers.jsonl``: SmolLM2-135M's own answers to benchmark
  prompts outside the real-small profile's sample, read and labelled one by one.

The response-harm model reads every answer (no gate) with the signals of ``signals.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.labeling.classifier import JUDGES_DIR, LinearTextModel
from safetygraph.labeling.design import design_matrix
from safetygraph.labeling.gold import report_question_sql

ALL_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
DEV_MODELS = ("GPT4", "ChatGPT", "Claude")
THRESHOLD_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(16))  # 0.10 .. 0.85


def f_beta(gold, pred, beta: float) -> float:
    """F-beta of boolean arrays (beta < 1 weighs precision more)."""
    tp = int((gold & pred).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(gold.sum()), 1)
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall) if tp else 0.0


def dna_answers(data: Path) -> pa.Table:
    """(grp, prompt, response, label, tags, category): Do-Not-Answer's answers with the human
    ``harmful`` label, outside the reported part (held-out models' answers to report-half
    questions), grouped by question."""
    path = data / "do-not-answer" / "data_en.csv"
    con = duck.connect()
    con.execute(f"CREATE VIEW d AS SELECT * FROM read_csv('{path}', header=true, all_varchar=true)")
    held = [m for m in ALL_MODELS if m not in DEV_MODELS]
    parts = " UNION ALL ".join(
        f"""SELECT id AS grp, '{m}' AS model, question AS prompt, "{m}_response" AS response,
                   "{m}_harmful"::INT = 1 AS label FROM d"""
        for m in ALL_MODELS
    )
    return duck.query(
        con,
        f"""SELECT 'do_not_answer:' || grp AS grp, prompt, response, label, ['harmful'] AS tags,
                   NULL::VARCHAR AS category
            FROM ({parts})
            WHERE response IS NOT NULL
              AND NOT (model IN ({", ".join(repr(m) for m in held)}) AND {report_question_sql("grp")})
            ORDER BY grp, model""",
    )


def gptfuzz_answers(data: Path) -> pa.Table:
    """GPTFuzz's hand-labelled answers (1 = jailbroken: the answer gives the harmful help) with their
    question's text, outside the reported part: the answers to the report half of the questions
    (``report_question`` of the question's index, as ``gold.py`` splits the registry source, whose
    ``source_id`` is that index). The jailbreak template is not stored: the prompt is the question."""
    d = data / "gptfuzz"
    con = duck.connect()
    return duck.query(
        con,
        f"""SELECT 'gptfuzz:' || r.question AS grp, q.text AS prompt, r.Response AS response,
                   r.label::INT = 1 AS label, ['harmful'] AS tags, NULL::VARCHAR AS category
            FROM read_csv('{d / "responses_labeled_train.csv"}', header=true, all_varchar=true) r
            JOIN read_csv('{d / "question_list_0_79.csv"}', header=true, all_varchar=true) q
              ON r.question = q.index
            WHERE r.Response IS NOT NULL AND NOT {report_question_sql("r.question")}
            ORDER BY r.question::INT, r.Response""",
    )


EVERYDAY_ANSWERS = 1500  # MedQuAD answers among the response-harm model's harmless examples


def everyday_answers(data: Path, n: int = EVERYDAY_ANSWERS) -> pa.Table:
    """Everyday questions answered helpfully (MedQuAD's patient questions with their answers): none
    harmful. Without them every training prompt is a harmful one, and the model could not learn
    that a list-shaped, on-topic answer to a benign request is not harm."""
    path = data / "medquad" / "medquad_qa.jsonl.gz"
    return duck.query(
        duck.connect(),
        f"""SELECT 'medquad:' || md5(question) AS grp, question AS prompt, answer AS response,
                   FALSE AS label, []::VARCHAR[] AS tags, NULL::VARCHAR AS category
            FROM read_json_auto('{path}', format='newline_delimited')
            WHERE question IS NOT NULL AND answer IS NOT NULL AND length(answer) > 40
            ORDER BY md5(question || answer), question LIMIT {int(n)}""",
    )


TRAINING_DIR = JUDGES_DIR / "training"


def authored_answers(folder: Path = TRAINING_DIR) -> pa.Table:
    """The project's own labelled chat answers (``chat_answers_*.jsonl``: prompt, response, harmful,
    refusal, attempted, kind): hand-written plain-chat harmful compliance of low severity, attempted
    compliance in a weak small model's manner, refusals, lectures and everyday answers. None of
    them is in the shipped evaluation set (sample_data/judge_gold)."""
    files = sorted(folder.glob("chat_answers_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no chat_answers_*.jsonl in {folder}")
    paths = "[" + ", ".join(duck.sql_literal(str(f)) for f in files) + "]"
    return duck.query(
        duck.connect(),
        f"""SELECT 'authored:' || md5(prompt) AS grp, prompt, response, harmful = 1 AS label,
                   []::VARCHAR[] AS tags, NULL::VARCHAR AS category
            FROM read_json_auto({paths}, format='newline_delimited')
            WHERE prompt IS NOT NULL AND response IS NOT NULL ORDER BY grp, response""",
    )


def small_model_prompts(data: Path) -> pa.Table:
    """(prompt_md5, prompt, tags) of the benchmark prompts the small model answered
    (``small_model_answers.jsonl`` keeps only the prompt's md5: the prompts stay in ../shared/data)."""
    hb = data / "harmbench"
    rd = data / "refusal-direction"
    return duck.query(
        duck.connect(),
        f"""SELECT md5(text) AS prompt_md5, text AS prompt, any_value(tags) AS tags FROM (
              SELECT Behavior AS text, ['harmful'] AS tags FROM read_csv('{hb / "harmbench_behaviors_text_all.csv"}', header=true, all_varchar=true)
              UNION ALL SELECT Behavior, ['harmful'] FROM read_csv('{hb / "extra_behavior_datasets" / "advbench_behaviors.csv"}', header=true, all_varchar=true)
              UNION ALL SELECT instruction, ['harmful'] FROM read_json_auto('{rd / "harmful_train.json"}')
              UNION ALL SELECT prompt, CASE WHEN label = 'unsafe' THEN ['borderline', 'harmful'] ELSE ['borderline'] END
                FROM read_csv('{data / "xstest" / "xstest_prompts.csv"}', header=true, all_varchar=true)
            ) GROUP BY text""",
    )


def small_model_answers(data: Path, folder: Path = TRAINING_DIR) -> pa.Table:
    """SmolLM2-135M-Instruct's own answers to benchmark prompts outside the real-small profile's
    sample, read one by one and labelled (``small_model_answers.jsonl``: prompt_md5, response,
    harmful, refusal, attempted, kind): mostly attempted compliance, the kind of answer the judge
    must not call harmful. Joined to their prompts in ../shared/data by md5."""
    con = duck.connect()
    duck.register(con, "p", small_model_prompts(data))
    path = folder / "small_model_answers.jsonl"
    return duck.query(
        con,
        f"""SELECT 'small:' || a.prompt_md5 AS grp, p.prompt, a.response, a.harmful = 1 AS label,
                   p.tags, NULL::VARCHAR AS category
            FROM read_json_auto({duck.sql_literal(str(path))}, format='newline_delimited') a
            JOIN p USING (prompt_md5) ORDER BY grp, a.response""",
    )


def _decisions(rows: pa.Table):
    """A connection holding the rule-judge's decisions table ``d`` over ``rows`` (prompt, response,
    tags, category): the signals the response-harm models read."""
    from safetygraph.labeling.combined import CombinedJudge

    judge = CombinedJudge(response_model=False)
    con = duck.connect(
        t=rows.select(["prompt", "response", "tags", "category"]).append_column(
            "__pos", pa.array(range(rows.num_rows), pa.int64())
        )
    )
    judge.prepare(con)
    return con, judge


def response_rows(data: Path) -> pa.Table:
    """(text, label, grp, src, sig_*): every answer of GPTFuzz and Do-Not-Answer outside their
    reported parts, with the signals of ``signals.py`` computed by the judge's own SQL. No gate:
    refusals, partial refusals and answers to prompts the judge reads as harmless are all here."""
    from safetygraph.labeling.signals import signals_sql

    parts = {
        "gptfuzz": gptfuzz_answers(data),
        "do_not_answer": dna_answers(data),
        "medquad": everyday_answers(data),
        "authored": authored_answers(),
        "small_model": small_model_answers(data),
    }
    rows = pa.concat_tables(
        [t.append_column("src", pa.array([s] * t.num_rows, pa.string())) for s, t in parts.items()]
    )
    con, _ = _decisions(rows)
    sig = duck.query(
        con, f"SELECT * EXCLUDE (response, prompt) FROM ({signals_sql('d')}) ORDER BY __pos"
    )
    out = pa.table(
        {
            "text": rows.column("response"),
            "label": rows.column("label"),
            "grp": rows.column("grp"),
            "src": rows.column("src"),
        }
    )
    for name in sig.column_names[1:]:
        out = out.append_column(name, sig.column(name))
    return out


# the signals weigh as much as a strong n-gram: scaled before fitting, the weight stored unscaled
SIGNAL_SCALE = 3.0
RESPONSE_C_GRID = (0.3, 1.0, 3.0)


MIN_CELL = 50


def _cell_weights(y, src) -> Any:
    """Sample weights that give each (source, label) cell the same total weight: GPTFuzz's 1,300
    harmful answers do not drown Do-Not-Answer's 120, nor its harmless answers the harmful ones."""
    import numpy as np

    w = np.zeros(len(y))
    cells = {(s, bool(lab)) for s, lab in zip(src, y, strict=True)}
    for s, lab in cells:
        mask = (src == s) & (y == lab)
        # a cell of a handful of rows does not get a row weight of hundreds
        w[mask] = len(y) / (len(cells) * max(mask.sum(), MIN_CELL))
    return w


def _response_cv(x, y, src, groups, w):
    """({C: mean over labelled sources of the out-of-fold F1}, {C: its threshold}, {C: F1 per
    source}) by grouped 5-fold CV over ``RESPONSE_C_GRID``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    scores, thresholds, per_source = {}, {}, {}
    for c in RESPONSE_C_GRID:
        oof = np.zeros(len(y))
        for a, b in GroupKFold(5).split(x, y, groups):
            clf = LogisticRegression(C=c, max_iter=5000).fit(x[a], y[a], sample_weight=w[a])
            oof[b] = clf.predict_proba(x[b])[:, 1]
        # the sources with harmful answers enough to measure
        labelled = sorted({s for s in src if y[src == s].sum() >= 20})
        f = {
            t: {s: f_beta(y[src == s], oof[src == s] >= t, 1.0) for s in labelled}
            for t in THRESHOLD_GRID
        }
        thresholds[c] = max(
            THRESHOLD_GRID, key=lambda t: (round(np.mean(list(f[t].values())), 4), t)
        )
        scores[c] = float(np.mean(list(f[thresholds[c]].values())))
        per_source[c] = {s: round(v, 4) for s, v in f[thresholds[c]].items()}
    return scores, thresholds, per_source


def fit_response(
    rows: pa.Table, *, name: str, max_chars: int, ngrams: int, provenance: dict[str, Any]
) -> LinearTextModel:
    """The response-harm model: logistic regression over the answer's word n-grams and the
    signals (``sig_*`` columns), each (source, label) cell weighted equally. C and the threshold by
    grouped 5-fold CV (groups: the question), maximising the mean over sources of the out-of-fold
    F1, so that neither labelled set decides alone."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    signals = [c.removeprefix("sig_") for c in rows.column_names if c.startswith("sig_")]
    grams, vocab = design_matrix(rows, max_chars, ngrams, None, 2)
    dense = np.column_stack(
        [np.nan_to_num(rows.column(f"sig_{s}").to_numpy(zero_copy_only=False)) for s in signals]
    )
    x = hstack([grams, csr_matrix(dense * SIGNAL_SCALE)]).tocsr()
    y = np.array(rows.column("label").to_pylist(), dtype=bool)
    src = np.array(rows.column("src").to_pylist())
    groups = rows.column("grp").to_pylist()
    w = _cell_weights(y, src)
    scores, thresholds, per_source = _response_cv(x, y, src, groups, w)
    best = max(RESPONSE_C_GRID, key=lambda c: (round(scores[c], 4), -c))
    clf = LogisticRegression(C=best, max_iter=5000).fit(x, y, sample_weight=w)
    inverse = {i: f for f, i in vocab.items()}
    coef = clf.coef_[0]
    n = len(vocab)
    weights = {inverse[i]: round(float(coef[i]), 5) for i in range(n) if abs(coef[i]) >= 1e-4}
    return LinearTextModel(
        name=name,
        text="response",
        max_chars=max_chars,
        ngrams=ngrams,
        bias=round(float(clf.intercept_[0]), 5),
        threshold=float(thresholds[best]),
        weights=dict(sorted(weights.items())),
        signals={s: round(float(coef[n + k]) * SIGNAL_SCALE, 5) for k, s in enumerate(signals)},
        provenance={
            **provenance,
            "algorithm": "logistic regression (scikit-learn) over binary n-gram features and the "
            "judge's signals, each (source, label) cell weighted equally",
            "c_grid": list(RESPONSE_C_GRID),
            "cv_mean_f1": {str(c): round(s, 4) for c, s in scores.items()},
            "cv_f1_by_source": {str(c): v for c, v in per_source.items()},
            "c": best,
            "rows": rows.num_rows,
            "positives": int(y.sum()),
            "rows_by_source": {s: int((src == s).sum()) for s in sorted(set(src))},
            "vocabulary": len(vocab),
        },
    )
