"""Benchmark decontamination: a recipe's prompts against the declared evaluation sets, set-wise in
DuckDB (hashes joined, never a per-row Python loop).

Texts are normalised (lower case, every run of characters that are not letters or digits one
space) and cut into words. A training prompt is contaminated by an evaluation prompt when one of
five rules holds, tried in this order (the first that holds is the one recorded):

=========== ===============================================================================
exact       the normalised texts are equal
contained   the evaluation prompt (``min_words`` to ``ngram - 1`` words) appears whole, word for
            word, inside the training prompt (a jailbreak wrapper around a benchmark prompt);
            candidates meet on the evaluation prompt's first ``min_words`` words, then the
            containment is verified
ngram       the two share a word ``ngram``-gram (13 by default, lm-evaluation-harness's and
            datatrove's rule; evaluation prompts of at least ``ngram`` words)
one_word    both have ``min_words`` to ``2 * ngram`` words and differ by one word substituted,
            inserted or deleted (deletion neighbourhoods: each side's texts with one word blanked
            or dropped, hashed and joined)
minhash     the project's near-duplicate MinHash/LSH on word 3-gram shingles, verified by exact
            Jaccard >= ``jaccard`` (0.8), across the two sets only
=========== ===============================================================================

Each match keeps the evaluation set, the evaluation prompt's id and text, the rule, the matched
n-gram (or the evaluation prompt) and the score (1.0, or the Jaccard similarity).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from safetygraph.audit.neardup import cross_near_duplicate_pairs
from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, read_columns

EVAL_PROMPTS_SCHEMA = pa.schema(
    [
        pa.field("eval_set", pa.string(), nullable=False),
        pa.field("eval_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
    ]
)

# one row per (prompt hash, source) of a recipe's set that the step took out of training
CONTAMINATION_SCHEMA = pa.schema(
    [
        pa.field("prompt_hash", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("action", pa.string(), nullable=False),  # removed | eval_only
        pa.field("eval_set", pa.string()),
        pa.field("eval_id", pa.string()),
        pa.field("eval_prompt", pa.string()),
        pa.field("method", pa.string(), nullable=False),
        pa.field("match", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

METHODS = ("exact", "contained", "ngram", "one_word", "minhash")
EVAL_SET_SOURCE = "eval_set_source"

NORMALISE = r"trim(regexp_replace(lower(coalesce({x}, '')), '[^\p{{L}}\p{{N}}]+', ' ', 'g'))"


@dataclass(frozen=True)
class Rules:
    """How close a training prompt may come to an evaluation prompt (the profile's
    ``decontamination:``)."""

    ngram: int = 13
    min_words: int = 6
    jaccard: float = 0.8

    def __post_init__(self) -> None:
        if self.ngram < 2 or self.min_words < 2 or self.min_words > self.ngram:
            raise ValueError(
                f"decontamination: need 2 <= min_words ({self.min_words}) <= ngram ({self.ngram})"
            )
        if not 0.0 < self.jaccard <= 1.0:
            raise ValueError(f"decontamination: jaccard {self.jaccard} must be in (0, 1]")


def _words(con, table: str, key: str, text: str, out: str) -> None:
    norm = NORMALISE.format(x=text)
    con.execute(
        f"""CREATE TABLE {out} AS SELECT k, t, w, len(w) AS n FROM (
          SELECT {key} AS k, t, string_split(t, ' ') AS w
          FROM (SELECT {key}, {norm} AS t FROM {table}) WHERE t <> '')"""
    )


def _grams(table: str, size: int | str) -> str:
    """SQL: ``(k, i, h)`` for every word ``size``-gram of ``table(k, w, n)``: its start and the
    hash of its words (the list is hashed, no string is built)."""
    return f"""SELECT k, i, hash(w[i + 1 : i + {size}]) AS h
        FROM (SELECT k, w, unnest(range(n - {size} + 1)) AS i FROM {table} WHERE n >= {size})"""


def _neighbours(table: str, lo: int, hi: int) -> str:
    """SQL: ``(k, kind, h)``: each text of ``lo`` to ``hi`` words with one word blanked (``sub``)
    or dropped (``del``), hashed as word lists; plus the whole text (``full``)."""
    return f"""
        SELECT k, 'full' AS kind, hash(w) AS h FROM {table} WHERE n BETWEEN {lo} AND {hi}
        UNION ALL
        SELECT k, 'sub', hash(list_concat(w[1 : i - 1], ['*'], w[i + 1 : n]))
        FROM (SELECT k, w, n, unnest(range(1, n + 1)) AS i FROM {table} WHERE n BETWEEN {lo} AND {hi})
        UNION ALL
        SELECT k, 'del', hash(list_concat(w[1 : i - 1], w[i + 1 : n]))
        FROM (SELECT k, w, n, unnest(range(1, n + 1)) AS i FROM {table} WHERE n BETWEEN {lo} AND {hi})"""


def _rule_sql(n: int, m: int) -> dict[str, str]:
    """The INSERT of each word rule into ``hits`` (the tables c, e, eg, ea, en of find_matches)."""
    return {
        "exact": "INSERT INTO hits SELECT c.k, e.k, 'exact', e.t, 1.0 FROM c JOIN e ON c.t = e.t",
        "contained": f"""INSERT INTO hits
          SELECT DISTINCT x.k, ea.k, 'contained', ea.t, 1.0
          FROM ({_grams("c", m)}) x JOIN ea USING (h) JOIN c ON c.k = x.k
          WHERE contains(' ' || c.t || ' ', ' ' || ea.t || ' ')""",
        "ngram": f"""INSERT INTO hits
          SELECT x.k, eg.k, 'ngram', array_to_string(any_value(c.w[x.i + 1 : x.i + {n}]), ' '), 1.0
          FROM ({_grams("c", n)}) x JOIN eg USING (h) JOIN c ON c.k = x.k JOIN e ON e.k = eg.k
          WHERE c.w[x.i + 1 : x.i + {n}] = e.w[eg.i + 1 : eg.i + {n}]
          GROUP BY x.k, eg.k""",
        "one_word": f"""INSERT INTO hits
          SELECT DISTINCT cn.k, en.k, 'one_word', e.t, 1.0 - 1.0 / greatest(e.n, 1)
          FROM ({_neighbours("c", m, 2 * n)}) cn
          JOIN en ON cn.h = en.h
           AND ((cn.kind = 'sub' AND en.kind = 'sub')
             OR (cn.kind = 'del' AND en.kind = 'full') OR (cn.kind = 'full' AND en.kind = 'del'))
          JOIN e ON e.k = en.k JOIN c ON c.k = cn.k WHERE c.t <> e.t""",
    }


def _minhash_hits(con, jaccard: float) -> None:
    """Add to ``hits`` the candidate prompts (``c``) whose MinHash Jaccard with an evaluation
    prompt (``e``) is at least ``jaccard``."""
    # a Jaccard of `jaccard` needs shingle sets within that ratio in size: a training text far
    # longer than the longest evaluation prompt cannot reach it and is not signed
    longest = duck.one(con, "SELECT coalesce(max(n), 0) FROM e")[0]
    left = duck.query(con, f"SELECT k, t FROM c WHERE n - 2 <= {longest} / {jaccard}")
    right = duck.query(con, "SELECT CAST(k AS VARCHAR) AS k, t FROM e")
    near = cross_near_duplicate_pairs(
        left.column("k"),
        left.column("t"),
        right.column("k"),
        right.column("t"),
        threshold=jaccard,
        num_perm=64,
    )
    duck.register(con, "near", near)
    con.execute(
        "INSERT INTO hits SELECT near.a, CAST(near.b AS BIGINT), 'minhash', e.t, near.jaccard "
        "FROM near JOIN e ON CAST(e.k AS VARCHAR) = near.b"
    )


def find_matches(
    candidates: pa.Table,
    evals: pa.Table,
    rules: Rules = Rules(),
    methods: tuple[str, ...] = METHODS,
) -> pa.Table:
    """``(prompt_hash, eval_set, eval_id, eval_prompt, method, match, score)``: for each distinct
    prompt of ``candidates`` (columns prompt_hash, prompt) that one of the rules (``methods``, all
    by default) ties to a prompt of ``evals`` (EVAL_PROMPTS_SCHEMA), the first rule that holds
    and its best match."""
    n, m = rules.ngram, rules.min_words
    con = duck.connect(cand=candidates.select(["prompt_hash", "prompt"]), ev=evals)
    con.execute(
        "CREATE TABLE cd AS SELECT prompt_hash, any_value(prompt) AS prompt FROM cand GROUP BY 1"
    )
    _words(con, "cd", "prompt_hash", "prompt", "c")
    con.execute(
        "CREATE TABLE evn AS SELECT row_number() OVER (ORDER BY eval_set, eval_id) AS ei, * FROM ev"
    )
    _words(con, "evn", "ei", "prompt", "e")
    con.execute(
        f"""
        CREATE TABLE eg AS {_grams("e", n)};
        CREATE TABLE ea AS SELECT k, hash(w[1 : {m}]) AS h, t FROM e WHERE n BETWEEN {m} AND {n - 1};
        CREATE TABLE en AS {_neighbours("e", m, 2 * n)};
        CREATE TABLE hits (k VARCHAR, ei BIGINT, method VARCHAR, match VARCHAR, score DOUBLE);
        """
    )
    for method, sql in _rule_sql(n, m).items():
        if method in methods:
            con.execute(sql)
    if "minhash" in methods:
        _minhash_hits(con, rules.jaccard)
    order = ", ".join(f"'{x}'" for x in METHODS)
    return duck.query(
        con,
        f"""
        SELECT h.k AS prompt_hash, evn.eval_set, evn.eval_id, evn.prompt AS eval_prompt,
               h.method, h.match, h.score
        FROM hits h JOIN evn ON evn.ei = h.ei
        QUALIFY row_number() OVER (PARTITION BY h.k
                 ORDER BY list_position([{order}], h.method), h.score DESC, evn.eval_set, evn.eval_id) = 1
        ORDER BY prompt_hash
        """,
    )


def _reason(method: str) -> str:
    return {
        "exact": "the prompt is an evaluation prompt (normalised text equal)",
        "contained": "the evaluation prompt appears word for word inside the prompt",
        "ngram": "the prompt shares a word n-gram with the evaluation prompt",
        "one_word": "the prompt differs from the evaluation prompt by one word",
        "minhash": "the prompt is a near duplicate of the evaluation prompt (Jaccard of word 3-grams)",
    }[method]


def contamination(
    samples: pa.Table | StoredTable,
    evals: pa.Table,
    rules: Rules = Rules(),
    eval_only: tuple[str, ...] = (),
) -> pa.Table:
    """The rows of a recipe's set (columns prompt_hash, prompt, source; a stored set: only those
    read) that must not train, as CONTAMINATION_SCHEMA, one row per (prompt hash, source):

    - every prompt of a source in ``eval_only`` (an evaluation set the profile builds from
      explicitly): ``eval_only``, its rows go to the eval side only; a prompt that such a source
      shares with another source goes to eval with it;
    - every other prompt that a rule ties to an evaluation prompt: ``removed``."""
    narrow = read_columns(samples, ["prompt_hash", "prompt", "source"])
    con = duck.connect(s=narrow)
    only = ", ".join(duck.sql_literal(x) for x in eval_only) or "NULL"
    con.execute(
        f"""CREATE TABLE held AS SELECT DISTINCT prompt_hash FROM s WHERE source IN ({only});
        CREATE TABLE rest AS SELECT * FROM s WHERE prompt_hash NOT IN (SELECT prompt_hash FROM held)"""
    )
    rest = duck.query(con, "SELECT DISTINCT prompt_hash, prompt FROM rest")
    matches = (
        find_matches(rest, evals, rules)
        if rest.num_rows and evals.num_rows
        else pa.table(
            {
                c: pa.array([], pa.float64() if c == "score" else pa.string())
                for c in (
                    "prompt_hash",
                    "eval_set",
                    "eval_id",
                    "eval_prompt",
                    "method",
                    "match",
                    "score",
                )
            }
        )
    )
    duck.register(con, "m", matches)
    reasons = " ".join(f"WHEN '{x}' THEN {duck.sql_literal(_reason(x))}" for x in METHODS)
    out = duck.query(
        con,
        f"""
        SELECT s.prompt_hash, s.source, count(*) AS rows, any_value(s.prompt) AS prompt,
               'eval_only' AS action, NULL AS eval_set, NULL AS eval_id, NULL AS eval_prompt,
               '{EVAL_SET_SOURCE}' AS method, NULL AS match, NULL::DOUBLE AS score,
               'an evaluation set the profile builds from (decontamination.eval_only): eval side only' AS reason
        FROM s JOIN held USING (prompt_hash) GROUP BY 1, 2
        UNION ALL
        SELECT r.prompt_hash, r.source, count(*), any_value(r.prompt), 'removed', any_value(m.eval_set),
               any_value(m.eval_id), any_value(m.eval_prompt), any_value(m.method), any_value(m.match),
               any_value(m.score), any_value(CASE m.method {reasons} END)
        FROM rest r JOIN m USING (prompt_hash) GROUP BY 1, 2
        ORDER BY 5, 2, 1
        """,
    )
    return out.cast(CONTAMINATION_SCHEMA)


def summary(table: pa.Table) -> dict:
    """Counts for the QA report, the manifest and the dataset card: rows and prompts removed and
    held for eval, by evaluation set, by rule and by source."""
    con = duck.connect(t=table)

    def counts(col: str, action: str) -> dict[str, int]:
        return {
            str(k): int(v)
            for k, v in duck.rows(
                con,
                f"SELECT {col}, sum(rows) FROM t WHERE action = ? GROUP BY 1 ORDER BY 1",
                [action],
            )
        }

    removed, held, prompts = duck.one(
        con,
        "SELECT coalesce(sum(rows) FILTER (WHERE action = 'removed'), 0), "
        "coalesce(sum(rows) FILTER (WHERE action = 'eval_only'), 0), "
        "count(DISTINCT prompt_hash) FILTER (WHERE action = 'removed') FROM t",
    )
    return {
        "rows_removed": int(removed),
        "prompts_removed": int(prompts),
        "rows_eval_only": int(held),
        "removed_by_eval_set": counts("eval_set", "removed"),
        "removed_by_method": counts("method", "removed"),
        "removed_by_source": counts("source", "removed"),
        "eval_only_by_source": counts("source", "eval_only"),
    }


def training_contamination(
    train: pa.Table | StoredTable,
    evals: pa.Table,
    rules: Rules = Rules(),
    eval_only: tuple[str, ...] = (),
    key: str = "prompt_hash",
    text: str = "prompt",
) -> pa.Table:
    """What a recipe's training rows still hold of the evaluation sets, checked from scratch on
    the training file (the guard behind the decontamination step): ``(key, source, rows, method,
    eval_set, eval_id, match)`` for every training prompt a rule ties to an evaluation prompt, and
    every row of an evaluation set (``eval_only`` sources belong on the eval side)."""
    narrow = read_columns(train, [key, text, "source"]).rename_columns(
        ["prompt_hash", "prompt", "source"]
    )
    matches = (
        find_matches(narrow, evals, rules)
        if narrow.num_rows and evals.num_rows
        else pa.table(
            {
                c: pa.array([], pa.string())
                for c in ("prompt_hash", "eval_set", "eval_id", "match", "method")
            }
        )
    )
    con = duck.connect(t=narrow, m=matches)
    only = ", ".join(duck.sql_literal(x) for x in eval_only) or "NULL"
    return duck.query(
        con,
        f"""
        SELECT t.prompt_hash AS key, t.source, count(*) AS rows, any_value(m.method) AS method,
               any_value(m.eval_set) AS eval_set, any_value(m.eval_id) AS eval_id, any_value(m.match) AS match
        FROM t JOIN m USING (prompt_hash) GROUP BY 1, 2
        UNION ALL
        SELECT prompt_hash, source, count(*), '{EVAL_SET_SOURCE}', source, NULL, NULL
        FROM t WHERE source IN ({only}) GROUP BY 1, 2
        ORDER BY 2, 1
        """,
    )
