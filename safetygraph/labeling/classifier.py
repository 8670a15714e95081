"""Small linear text classifiers that run in DuckDB: the refusal classifier (is this response a
refusal?) and the prompt-harm classifier (is this request harmful?).

A model is a JSON file: the feature recipe (which text, how many characters, n-gram sizes), a bias
and one weight per feature. Features are the distinct lower-cased word n-grams of the text, computed
by the same SQL at training and at inference time, so the two can never disagree; scoring is one
join of the row's features with the weight table and a sum, set-wise over the whole table. Training
(``safetygraph.labeling.train``) needs scikit-learn; scoring needs only DuckDB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.paths import PACKAGED_CONFIG

JUDGES_DIR = PACKAGED_CONFIG / "judges"
REFUSAL_MODEL = JUDGES_DIR / "refusal_classifier.json"
PROMPT_HARM_MODEL = JUDGES_DIR / "prompt_harm_classifier.json"
RESPONSE_HARM_MODEL = JUDGES_DIR / "response_harm_classifier.json"
# features of the context text (the prompt, for a model that reads a response)
CONTEXT_PREFIX = "q:"


class ClassifierError(ValueError):
    pass


def normalise_sql(col: str) -> str:
    """Lower-cased text with curly apostrophes straightened (the judge's normal form)."""
    return f"regexp_replace(lower(coalesce({col}, '')), '[’‘]', '''', 'g')"


def features_sql(table: str, text_col: str, max_chars: int, ngrams: int, prefix: str = "") -> str:
    """(__pos, feat) rows: the distinct word n-grams (1..ngrams) of the first ``max_chars``
    characters of ``text_col`` (words: runs of ``[a-z0-9']``), each behind ``prefix`` (so a second
    text's n-grams are features of their own). ``table`` must carry ``__pos``."""
    grams = ["w"]
    for n in range(2, ngrams + 1):
        joined = " || ' ' || ".join(f"w[i + {k}]" for k in range(n))
        grams.append(f"list_transform(range(1, len(w) - {n - 2}), lambda i: {joined})")
    return f"""
        SELECT __pos, {duck.sql_literal(prefix) + " || " if prefix else ""}feat AS feat FROM (
          SELECT __pos, list_distinct(flatten([{", ".join(grams)}])) AS feats
          FROM (SELECT __pos, regexp_extract_all(left({normalise_sql(text_col)}, {int(max_chars)}), '[a-z0-9'']+') AS w
                FROM {table})
        ), unnest(feats) AS u(feat)
    """


@dataclass(frozen=True)
class LinearTextModel:
    """A trained model: ``weights`` per feature, ``bias``, the feature recipe and its provenance."""

    name: str
    text: str  # which column it reads: "response" or "prompt"
    max_chars: int
    ngrams: int
    bias: float
    threshold: float
    weights: dict[str, float]
    provenance: dict[str, Any]
    # an optional second text read beside ``text`` (the prompt, for the response-harm model): its
    # n-grams are features behind ``CONTEXT_PREFIX``
    context: str | None = None
    context_chars: int = 0
    # weights of named numeric signals read beside the n-grams (the response-harm model: the
    # refusal and prompt-harm scores, the refusal flags, relevance); the scored table carries each
    # as a column ``sig_<name>`` (``safetygraph.labeling.signals`` computes them)
    signals: dict[str, float] = field(default_factory=dict)

    def features_sql(self, table: str, text_col: str, context_col: str | None = None) -> str:
        """(__pos, feat) rows of ``table`` as this model reads them."""
        own = features_sql(table, text_col, self.max_chars, self.ngrams)
        if not self.context:
            return own
        ctx = features_sql(
            table, context_col or self.context, self.context_chars, self.ngrams, CONTEXT_PREFIX
        )
        return f"{own} UNION ALL {ctx}"

    @classmethod
    def load(cls, path: str | Path) -> LinearTextModel:
        path = Path(path)
        if not path.exists():
            raise ClassifierError(
                f"classifier file {path} does not exist; train it with "
                "`python -m safetygraph.labeling.train` (needs the `train` extra and ../shared/data)"
            )
        body = json.loads(path.read_text())
        try:
            features = body["features"]
            return cls(
                name=body["name"],
                text=features["text"],
                max_chars=int(features["max_chars"]),
                ngrams=int(features["ngrams"]),
                context=features.get("context"),
                context_chars=int(features.get("context_chars", 0)),
                signals={k: float(v) for k, v in (body.get("signals") or {}).items()},
                bias=float(body["bias"]),
                threshold=float(body.get("threshold", 0.5)),
                weights={k: float(v) for k, v in body["weights"].items()},
                provenance=body.get("provenance", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"{path}: not a classifier file ({exc})") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": {"text": self.text, "max_chars": self.max_chars, "ngrams": self.ngrams}
            | (
                {"context": self.context, "context_chars": self.context_chars}
                if self.context
                else {}
            ),
            "bias": self.bias,
            "threshold": self.threshold,
            **({"signals": self.signals} if self.signals else {}),
            "provenance": self.provenance,
            "weights": self.weights,
        }

    def save(self, path: str | Path) -> str:
        """Write the model (atomically) and return its sha256."""
        path = Path(path)
        body = json.dumps(self.to_json(), indent=0, sort_keys=False).encode()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        return hashlib.sha256(body).hexdigest()

    def _weights_table(self) -> pa.Table:
        return pa.table(
            {
                "feat": pa.array(list(self.weights), pa.string()),
                "weight": pa.array(list(self.weights.values()), pa.float64()),
            }
        )

    def probabilities(
        self, texts: pa.Array | pa.ChunkedArray, context: pa.Array | pa.ChunkedArray | None = None
    ) -> pa.Array:
        """P(positive) for each text (and its context, for a model that reads one), in order."""
        n = len(texts)
        cols = {"txt": texts, "__pos": pa.array(range(n), pa.int64())}
        if self.context:
            if context is None:
                raise ClassifierError(f"{self.name} reads a {self.context} beside each text")
            cols["ctx"] = context
        con = duck.connect(t=pa.table(cols))
        return self.score(con, "t", "txt", "ctx").column("p").combine_chunks()

    def score(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        text_col: str,
        context_col: str | None = None,
    ) -> pa.Table:
        """(__pos, p) for every row of ``table`` (which carries ``__pos``), ordered by ``__pos``."""
        weights = f"weights_{abs(hash(self.name))}"
        duck.register(con, weights, self._weights_table())
        dense = "".join(
            f" + {float(w)!r} * coalesce(t.sig_{name}, 0)" for name, w in self.signals.items()
        )
        return duck.query(
            con,
            f"""
            WITH f AS ({self.features_sql(table, text_col, context_col)}),
            s AS (SELECT __pos, sum(weight) AS z FROM f JOIN {weights} USING (feat) GROUP BY __pos)
            SELECT t.__pos, 1 / (1 + exp(-({self.bias} + coalesce(s.z, 0){dense}))) AS p
            FROM {table} t LEFT JOIN s USING (__pos) ORDER BY t.__pos
            """,
        )
