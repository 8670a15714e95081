"""Near-duplicate detection: MinHash signatures with LSH banding, then exact Jaccard on candidates.

Texts are normalised and cut into word n-gram shingles in DuckDB; the ``num_perm`` min-hashes of a
row come from numpy over bounded chunks of rows (the universal-hash permutations datasketch uses), and
only the LSH band hashes are kept; rows sharing a band become candidate pairs, and a candidate is a
near duplicate when the exact Jaccard similarity of its shingle sets reaches ``threshold``. Hashes
are DuckDB's and the permutations fixed by a seed: stable across runs (signatures are never stored).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, read_columns

PAIR_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float64())])
PAIRS_VERSION = "1"  # bump when near_duplicate_pairs changes what it finds


class PairCache:
    """A build's near-duplicate pairs by what they were computed from: a digest of the distinct
    ``(key, text)`` rows and the parameters, one Parquet file per digest under ``cache/neardup/``
    of ``storage`` (written atomically). The merge's figure, a recipe's split and the split's
    leakage check read the same prompts: the MinHash pass runs once, in whichever step comes
    first, whatever process or pod each step runs in. ``hits`` counts the pairs read back."""

    def __init__(self, storage: Any):
        self.storage = storage
        self.hits = 0

    def _parts(self, digest: str) -> tuple[str, ...]:
        return ("cache", "neardup", f"{digest}.parquet")

    def get(self, digest: str) -> pa.Table | None:
        if not self.storage.exists(*self._parts(digest)):
            return None
        self.hits += 1
        return self.storage.read_table(*self._parts(digest)).cast(PAIR_SCHEMA)

    def put(self, digest: str, pairs: pa.Table) -> None:
        self.storage.write_table(pairs, *self._parts(digest))


def _digest(con: duckdb.DuckDBPyConnection, params: tuple) -> str:
    """sha256 of ``kt``'s distinct (key, text) rows in key order and of ``params``: equal digests,
    equal inputs."""
    rows = duck.one(
        con,
        "SELECT md5(string_agg(md5(k || chr(0) || coalesce(txt, chr(1))), '' ORDER BY i)), "
        "count(*) FROM kt",
    )
    return hashlib.sha256(json.dumps([PAIRS_VERSION, *params, *rows]).encode()).hexdigest()[:40]


# MinHash permutations h -> (a * h + b) mod P on 32-bit shingle hashes (datasketch's scheme; a and
# b below 2**32 so the product never leaves uint64), fixed by one seed: stable across runs.
BUCKET_PAIRS_MAX = 32
_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)


def _permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64)
    return a, b


def _signatures(flat: np.ndarray, starts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The MinHash signature of each row (its shingle hashes ``flat[starts[r]:starts[r+1]]``):
    one permutation at a time over the chunk's shingles, a vector that stays in the CPU's cache
    (a (shingles x num_perm) matrix does not, and is ten times slower)."""
    out = np.empty((len(starts), len(a)), dtype=np.uint64)
    for j in range(len(a)):
        v = flat * a[j]
        v += b[j]
        v %= _MERSENNE
        v &= _MASK32
        out[:, j] = np.minimum.reduceat(v, starts)
    return out


def _shingle_sql(ngram: int, relation: str = "t") -> str:
    """SQL over ``relation(k, txt)``: each distinct key with the distinct word ``ngram``-shingles of its
    normalised text (a text shorter than ``ngram`` words is one shingle)."""
    return f"""
        WITH n AS (
          SELECT DISTINCT k, string_split(trim(regexp_replace(lower(coalesce(txt, '')), '[^a-z0-9]+', ' ', 'g')), ' ') AS w FROM {relation}
        )
        SELECT k, CASE WHEN len(w) < {ngram} THEN [array_to_string(w, ' ')]
                       ELSE list_distinct(list_transform(range(len(w) - {ngram - 1}),
                              lambda i: array_to_string(w[i + 1 : i + {ngram}], ' '))) END AS shingles
        FROM n"""


def _band_table(
    con: duckdb.DuckDBPyConnection, num_perm: int, bands: int, ngram: int, chunk_rows: int
) -> None:
    """``band(i, b, bh)`` on ``con`` from ``kt(k, txt, i)``: for each key's integer ``i``, the hash
    of each LSH band of its MinHash signature.

    Shingles are hashed by DuckDB and fetched ``chunk_rows`` keys at a time; the ``num_perm``
    permutations run in numpy over that chunk (memory: chunk shingles x num_perm x 8 bytes), and
    only the band hashes go back into DuckDB (which spills past its memory limit), never the
    signatures: memory stays bounded by the chunk, not by the number of texts."""
    rows_per_band = num_perm // bands
    a, b = _permutations(num_perm)
    con.execute("CREATE TABLE band (i BIGINT, b TINYINT, bh UBIGINT)")
    reader = con.cursor()  # streams the shingles while ``con`` takes the band hashes
    shingles = f"""SELECT kt.i, list_transform(s.shingles, lambda x: hash(x)) AS h
        FROM ({_shingle_sql(ngram, "kt")}) s JOIN kt USING (k)"""
    for part in duck.stream(reader, shingles, chunk_rows):
        lists = part.column("h").combine_chunks()
        flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.uint64) & _MASK32
        offsets = lists.offsets.to_numpy()
        starts = offsets[:-1] - offsets[0]
        signature = _signatures(flat, starts, a, b)  # (rows, num_perm)
        per_band = signature.reshape(len(starts), bands, rows_per_band)
        # one 64-bit hash per band: the band's min-hashes folded with a large odd multiplier
        bh = np.zeros((len(starts), bands), dtype=np.uint64)
        for j in range(rows_per_band):
            bh = bh * np.uint64(0x9E3779B97F4A7C15) + per_band[:, :, j]
        ids = part.column("i").to_numpy()
        chunk = pa.table(
            {
                "i": pa.array(np.repeat(ids, bands)),
                "b": pa.array(np.tile(np.arange(bands, dtype=np.int8), len(starts))),
                "bh": pa.array(bh.reshape(-1)),
            }
        )
        con.register("chunk", chunk)
        con.execute("INSERT INTO band SELECT * FROM chunk")
        con.unregister("chunk")
    reader.close()


def _verified(con, threshold: float, ngram: int, key: str = "{side}.k") -> pa.Table:
    """The candidates ``cand(a, b)`` (key numbers of ``kt``) whose exact Jaccard over the word
    ``ngram``-shingles is at least ``threshold``, as ``(a, b, jaccard)``; the shingles are computed
    for the candidates' texts only. ``key`` renders a key from ``{side}`` (sa or sb)."""
    con.execute(
        f"""
        CREATE TABLE tc AS SELECT * FROM kt WHERE i IN (SELECT a FROM cand UNION SELECT b FROM cand);
        CREATE TABLE sh AS SELECT s.*, tc.i FROM ({_shingle_sql(ngram, "tc")}) s JOIN tc USING (k);
        """
    )
    return duck.query(
        con,
        f"""
        SELECT {key.format(side="sa")} AS a, {key.format(side="sb")} AS b,
               len(list_intersect(sa.shingles, sb.shingles)) / len(list_distinct(list_concat(sa.shingles, sb.shingles)))::DOUBLE AS jaccard
        FROM cand c JOIN sh sa ON sa.i = c.a JOIN sh sb ON sb.i = c.b
        WHERE jaccard >= {threshold}
        ORDER BY a, b
        """,
    ).cast(PAIR_SCHEMA)


def near_duplicate_pairs(
    keys: pa.Array,
    texts: pa.Array,
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 16,
    ngram: int = 3,
    chunk_rows: int = 8192,
    cache: PairCache | None = None,
) -> pa.Table:
    """Pairs (a < b) of keys whose texts are near duplicates (distinct keys only); read from
    ``cache`` where the same keyed texts were paired with the same parameters before.

    16 bands of 8 min-hashes: a pair with Jaccard 0.8 becomes a candidate with probability 0.98,
    one with 0.5 with probability 0.06, so candidates stay few; each candidate's exact Jaccard is
    then computed from the shingles of the candidates only. In a band bucket of more than
    ``BUCKET_PAIRS_MAX`` rows (a template shared by many rows) only the pairs with the bucket's
    smallest key are candidates: the cost stays linear, and such rows still meet their near
    duplicates in the other 15 bands or through the shared head (clusters stay connected).
    Keys are numbered once; the band table and the candidates carry the numbers, not the keys.
    """
    if num_perm % bands:
        raise ValueError("num_perm must be a multiple of bands")
    con = duck.connect(t=pa.table({"k": keys, "txt": texts}))
    con.execute(
        "CREATE TABLE kt AS SELECT k, txt, row_number() OVER (ORDER BY k) - 1 AS i "
        "FROM (SELECT k, any_value(txt) AS txt FROM t GROUP BY k)"
    )
    con.unregister("t")
    digest = _digest(con, (threshold, num_perm, bands, ngram)) if cache is not None else ""
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return cached
    _band_table(con, num_perm, bands, ngram, chunk_rows)
    # a bucket (rows sharing a band) of up to BUCKET_PAIRS_MAX rows gives all its pairs; a larger one
    # (a template many rows share) links each row to the bucket's smallest key, as datatrove does,
    # so candidates grow with the rows, not with the square of a template's frequency
    con.execute(
        f"""
        CREATE TABLE sized AS
        SELECT i, b, bh, count(*) OVER w AS n, min(i) OVER w AS head FROM band
        WINDOW w AS (PARTITION BY b, bh);
        DROP TABLE band;
        CREATE TABLE cand AS
        SELECT DISTINCT a, b FROM (
          SELECT x.i AS a, y.i AS b FROM sized x JOIN sized y
            ON x.b = y.b AND x.bh = y.bh AND x.i < y.i
          WHERE x.n > 1 AND x.n <= {BUCKET_PAIRS_MAX}
          UNION ALL
          SELECT head, i FROM sized WHERE n > {BUCKET_PAIRS_MAX} AND i <> head
        );
        DROP TABLE sized;
        """
    )
    pairs = _verified(con, threshold, ngram)
    if cache is not None:
        cache.put(digest, pairs)
    return pairs


def bands_for(threshold: float, num_perm: int = 128, recall: float = 0.95) -> int:
    """The fewest LSH bands (of ``num_perm`` min-hashes) with which a pair of Jaccard
    ``threshold`` shares a band with probability >= ``recall``: fewer, longer bands keep the
    candidates few; a lower threshold needs more, shorter ones."""
    for bands in (8, 16, 32, 64, 128):
        if num_perm % bands == 0:
            rows = num_perm // bands
            if 1 - (1 - threshold**rows) ** bands >= recall:
                return bands
    return num_perm


def cross_near_duplicate_pairs(
    left_keys: pa.Array,
    left_texts: pa.Array,
    right_keys: pa.Array,
    right_texts: pa.Array,
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int | None = None,
    ngram: int = 3,
    chunk_rows: int = 8192,
) -> pa.Table:
    """Pairs ``(a, b, jaccard)`` with ``a`` a left key and ``b`` a right key whose texts are near
    duplicates: the same signatures, bands and exact Jaccard as ``near_duplicate_pairs``, but
    only pairs across the two sets become candidates (the left set's own near duplicates cost
    nothing). In a band bucket of more than ``BUCKET_PAIRS_MAX`` rows each left row meets the
    bucket's smallest right row only. ``bands`` (by default from ``threshold``: the fewest bands
    that make a pair at the threshold a candidate with probability >= 0.95)."""
    bands = bands or bands_for(threshold, num_perm)
    if num_perm % bands:
        raise ValueError("num_perm must be a multiple of bands")
    con = duck.connect(
        l=pa.table({"k": pa.array(left_keys, pa.string()), "txt": left_texts}),
        r=pa.table({"k": pa.array(right_keys, pa.string()), "txt": right_texts}),
    )
    con.execute(
        """
        CREATE TABLE kt AS SELECT k, txt, s, row_number() OVER (ORDER BY s, k) - 1 AS i FROM (
          SELECT 'L:' || k AS k, any_value(txt) AS txt, 'L' AS s FROM l GROUP BY 1
          UNION ALL SELECT 'R:' || k, any_value(txt), 'R' FROM r GROUP BY 1)
        """
    )
    con.unregister("l")
    con.unregister("r")
    _band_table(con, num_perm, bands, ngram, chunk_rows)
    con.execute(
        f"""
        CREATE TABLE sized AS
        SELECT band.i, b, bh, kt.s, count(*) OVER w AS n, min(band.i) FILTER (WHERE kt.s = 'R') OVER w AS head
        FROM band JOIN kt USING (i)
        WINDOW w AS (PARTITION BY b, bh);
        DROP TABLE band;
        CREATE TABLE cand AS
        SELECT DISTINCT a, b FROM (
          SELECT x.i AS a, y.i AS b FROM sized x JOIN sized y ON x.b = y.b AND x.bh = y.bh
          WHERE x.s = 'L' AND y.s = 'R' AND x.n <= {BUCKET_PAIRS_MAX}
          UNION ALL
          SELECT i, head FROM sized WHERE n > {BUCKET_PAIRS_MAX} AND s = 'L' AND head IS NOT NULL
        );
        DROP TABLE sized;
        """
    )
    return _verified(con, threshold, ngram, key="substr({side}.k, 3)")


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


def distinct_prompts(*tables: pa.Table | StoredTable) -> pa.Table:
    """``(prompt_hash, prompt)`` once per prompt hash over ``tables`` (two columns read from each),
    in hash order: the prompts a split, its leakage check and the merge's figure pair."""
    con = duck.connect(
        **{f"t{i}": read_columns(t, ["prompt_hash", "prompt"]) for i, t in enumerate(tables)}
    )
    union = " UNION ALL ".join(f"SELECT prompt_hash, prompt FROM t{i}" for i in range(len(tables)))
    return duck.query(
        con,
        f"SELECT prompt_hash, any_value(prompt) AS prompt FROM ({union}) GROUP BY prompt_hash ORDER BY prompt_hash",
    )


def near_duplicate_rate(
    table: pa.Table | StoredTable, threshold: float = 0.8, cache: PairCache | None = None
) -> dict[str, int]:
    """Near-duplicate pairs of distinct prompts (keyed by ``prompt_hash``, as the splits key them,
    so ``cache`` serves the split and its leakage check too; a prompt's exact repeats are not
    pairs), within one source (a source holds both prompts) and across sources (none does). A
    stored table: only its three columns are read."""
    con = duck.connect(t=read_columns(table, ["prompt_hash", "source"]))
    distinct = distinct_prompts(table)
    pairs = near_duplicate_pairs(
        distinct.column("prompt_hash"), distinct.column("prompt"), threshold, cache=cache
    )
    duck.register(con, "p", pairs)
    total, within = duck.one(
        con,
        """
        WITH s AS (SELECT prompt_hash, list(DISTINCT source) AS sources FROM t GROUP BY 1)
        SELECT count(*), count(*) FILTER (WHERE list_has_any(x.sources, y.sources))
        FROM p JOIN s x ON x.prompt_hash = p.a JOIN s y ON y.prompt_hash = p.b
        """,
    )
    return {
        "near_duplicate_pairs_within_source": int(within),
        "near_duplicate_pairs_across_sources": int(total - within),
    }
