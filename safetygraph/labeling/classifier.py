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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.paths import REPO_ROOT

JUDGES_DIR = REPO_ROOT / "config" / "judges"
REFUSAL_MODEL = JUDGES_DIR / "refusal_classifier.json"
PROMPT_HARM_MODEL = JUDGES_DIR / "prompt_harm_classifier.json"


class ClassifierError(ValueError):
    pass


def normalise_sql(col: str) -> str:
    """Lower-cased text with curly apostrophes straightened (the judge's normal form)."""
    return f"regexp_replace(lower(coalesce({col}, '')), '[’‘]', '''', 'g')"


def features_sql(table: str, text_col: str, max_chars: int, ngrams: int) -> str:
    """(__pos, feat) rows: the distinct word n-grams (1..ngrams) of the first ``max_chars``
    characters of ``text_col`` (words: runs of ``[a-z0-9']``). ``table`` must carry ``__pos``."""
    grams = ["w"]
    for n in range(2, ngrams + 1):
        joined = " || ' ' || ".join(f"w[i + {k}]" for k in range(n))
        grams.append(f"list_transform(range(1, len(w) - {n - 2}), lambda i: {joined})")
    return f"""
        SELECT __pos, feat FROM (
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
            return cls(
                name=body["name"],
                text=body["features"]["text"],
                max_chars=int(body["features"]["max_chars"]),
                ngrams=int(body["features"]["ngrams"]),
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
            "features": {"text": self.text, "max_chars": self.max_chars, "ngrams": self.ngrams},
            "bias": self.bias,
            "threshold": self.threshold,
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

    def probabilities(self, texts: pa.Array | pa.ChunkedArray) -> pa.Array:
        """P(positive) for each text, in input order."""
        n = len(texts)
        t = pa.table({"txt": texts, "__pos": pa.array(range(n), pa.int64())})
        con = duck.connect(t=t)
        return self.score(con, "t", "txt").column("p").combine_chunks()

    def score(self, con: duckdb.DuckDBPyConnection, table: str, text_col: str) -> pa.Table:
        """(__pos, p) for every row of ``table`` (which carries ``__pos``), ordered by ``__pos``."""
        weights = f"weights_{abs(hash(self.name))}"
        duck.register(con, weights, self._weights_table())
        return duck.query(
            con,
            f"""
            WITH f AS ({features_sql(table, text_col, self.max_chars, self.ngrams)}),
            s AS (SELECT __pos, sum(weight) AS z FROM f JOIN {weights} USING (feat) GROUP BY __pos)
            SELECT t.__pos, 1 / (1 + exp(-({self.bias} + coalesce(s.z, 0)))) AS p
            FROM {table} t LEFT JOIN s USING (__pos) ORDER BY t.__pos
            """,
        )
