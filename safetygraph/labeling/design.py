"""The design matrix the judge's classifiers are fitted on (``train.py``, ``harm_data.py``)."""

from __future__ import annotations

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.labeling.classifier import CONTEXT_PREFIX, features_sql


def design_matrix(
    rows: pa.Table,
    max_chars: int,
    ngrams: int,
    vocab: dict[str, int] | None,
    min_df: int,
    context_chars: int = 0,
):
    """The binary n-gram matrix of ``rows`` (``text``, and ``context`` where ``context_chars``):
    features computed by the scoring SQL (``features_sql``), so training and inference agree; the
    vocabulary is built here (features in at least ``min_df`` rows) unless one is given."""
    import numpy as np
    from scipy.sparse import csr_matrix

    cols = ["text", "context"] if context_chars else ["text"]
    t = rows.select(cols).append_column("__pos", pa.array(range(rows.num_rows), pa.int64()))
    con = duck.connect(t=t)
    sql = features_sql("t", "text", max_chars, ngrams)
    if context_chars:
        sql += " UNION ALL " + features_sql("t", "context", context_chars, ngrams, CONTEXT_PREFIX)
    f = duck.query(con, f"SELECT * FROM ({sql}) ORDER BY __pos, feat")
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
    data = np.ones(len(cols))
    m = csr_matrix(
        (data, (pos[keep], np.array(cols, dtype=np.int64))), shape=(rows.num_rows, len(vocab))
    )
    return m, vocab
