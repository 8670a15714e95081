"""Near-duplicate detection: MinHash signatures with LSH banding, then exact Jaccard on candidates.

Set-wise in DuckDB: texts are normalised, cut into word n-gram shingles, each row gets ``num_perm``
min-hashes; rows sharing any LSH band become candidate pairs, and a candidate is a near duplicate
when the Jaccard similarity of its shingle sets reaches ``threshold``. Hashes are DuckDB's, stable
within a run (signatures are never stored).
"""

from __future__ import annotations

import pyarrow as pa

from safetygraph.core import duck

PAIR_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float64())])


def near_duplicate_pairs(
    keys: pa.Array,
    texts: pa.Array,
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 16,
    ngram: int = 3,
) -> pa.Table:
    """Pairs (a < b) of keys whose texts are near duplicates (distinct keys only).

    16 bands of 8 min-hashes: a pair with Jaccard 0.8 becomes a candidate with probability 0.98,
    one with 0.5 with probability 0.06, so candidates stay few and the exact check stays cheap.
    """
    if num_perm % bands:
        raise ValueError("num_perm must be a multiple of bands")
    rows = num_perm // bands
    con = duck.connect(t=pa.table({"k": keys, "txt": texts}))
    con.execute(
        f"""
        CREATE TABLE sh AS
        WITH n AS (
          SELECT DISTINCT k, string_split(trim(regexp_replace(lower(coalesce(txt, '')), '[^a-z0-9]+', ' ', 'g')), ' ') AS w FROM t
        )
        SELECT k, CASE WHEN len(w) < {ngram} THEN [array_to_string(w, ' ')]
                       ELSE list_distinct(list_transform(range(len(w) - {ngram - 1}),
                              lambda i: array_to_string(w[i + 1 : i + {ngram}], ' '))) END AS shingles
        FROM n;
        CREATE TABLE sig AS
        SELECT k, p, min(hash(s, p)) AS mh
        FROM (SELECT k, unnest(shingles) AS s FROM sh), range({num_perm}) r(p)
        GROUP BY k, p;
        CREATE TABLE band AS
        SELECT k, p // {rows} AS b, hash(list(mh ORDER BY p)) AS bh FROM sig GROUP BY k, p // {rows};
        """
    )
    return duck.query(
        con,
        f"""
        WITH cand AS (
          SELECT DISTINCT x.k AS a, y.k AS b FROM band x JOIN band y ON x.b = y.b AND x.bh = y.bh AND x.k < y.k
        )
        SELECT c.a, c.b,
               len(list_intersect(sa.shingles, sb.shingles)) / len(list_distinct(list_concat(sa.shingles, sb.shingles)))::DOUBLE AS jaccard
        FROM cand c JOIN sh sa ON sa.k = c.a JOIN sh sb ON sb.k = c.b
        WHERE jaccard >= {threshold}
        ORDER BY a, b
        """,
    ).cast(PAIR_SCHEMA)


def cluster_keys(keys: pa.Array, pairs: pa.Table) -> pa.Table:
    """Each key with a cluster id: the smallest key among it and its near duplicates, propagated
    until nothing changes (connected components), so a chain a~b~c lands in one cluster."""
    con = duck.connect(k=pa.table({"k": keys}), p=pairs)
    con.execute(
        """
        CREATE TABLE edges AS SELECT a, b FROM p UNION SELECT b, a FROM p;
        CREATE TABLE c AS SELECT DISTINCT k, k AS cl FROM k;
        """
    )
    for _ in range(64):  # label propagation; converges in the diameter of the largest cluster
        changed = duck.one(
            con,
            """
            WITH nxt AS (
              SELECT c.k, least(c.cl, coalesce(min(n.cl), c.cl)) AS cl
              FROM c LEFT JOIN edges e ON e.a = c.k LEFT JOIN c n ON n.k = e.b GROUP BY c.k, c.cl
            ), upd AS (SELECT count(*) AS n FROM nxt JOIN c USING (k) WHERE nxt.cl <> c.cl)
            SELECT n FROM upd
            """,
        )[0]
        if not changed:
            break
        con.execute(
            """
            CREATE OR REPLACE TABLE c AS
            SELECT c.k, least(c.cl, coalesce(min(n.cl), c.cl)) AS cl
            FROM c LEFT JOIN edges e ON e.a = c.k LEFT JOIN c n ON n.k = e.b GROUP BY c.k, c.cl
            """
        )
    return duck.query(con, "SELECT k AS key, cl AS cluster FROM c ORDER BY k")


def near_duplicate_rate(table: pa.Table, threshold: float = 0.8) -> dict[str, int]:
    """Near-duplicate prompt pairs within one source and across sources."""
    prompts = table.select(["id", "source", "prompt"])
    pairs = near_duplicate_pairs(
        prompts.column("id"), prompts.column("prompt"), threshold=threshold
    )
    con = duck.connect(p=pairs, t=prompts.select(["id", "source"]))
    within, across = duck.one(
        con,
        "SELECT count(*) FILTER (WHERE x.source = y.source), count(*) FILTER (WHERE x.source <> y.source) "
        "FROM p JOIN t x ON x.id = p.a JOIN t y ON y.id = p.b",
    )
    return {
        "near_duplicate_pairs_within_source": int(within),
        "near_duplicate_pairs_across_sources": int(across),
    }
