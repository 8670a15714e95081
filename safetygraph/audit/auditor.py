"""The per-source audit as a stream, set-wise in DuckDB: exact-duplicate removal (``dedup.py``), PII
detection and scrubbing (``pii.py``) and a toxicity score (``toxicity.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.audit.dedup import DEDUP_TEXT, normalised
from safetygraph.audit.pii import (
    ANY_PII,
    CONVERSATION_TEXT,
    PII_PATTERNS,
    patch_messages,
    pii_matches,
    scrub_columns,
)
from safetygraph.audit.toxicity import TOXICITY_METHOD, toxicity_sql
from safetygraph.core import duck
from safetygraph.core.records import AUDITED_SCHEMA, conform


@dataclass(frozen=True)
class AuditStats:
    """What the audit did, summed over the batches: rows in and out, exact duplicates dropped, rows
    with PII and by type, whether PII was scrubbed, the toxicity method."""

    rows_in: int
    duplicates_removed: int
    rows_out: int
    rows_with_pii: int
    pii_rows_by_type: dict[str, int]
    scrubbed: bool
    toxicity_method: str


class Auditor:
    """The audit as a stream: ``feed`` one batch of labelled rows at a time, get the audited rows
    back. Exact duplicates (same normalised conversation: every turn) are dropped against everything fed
    so far: the hashes seen live in a DuckDB table, not in Python objects, so memory is bounded by
    the batch size plus 16 bytes a distinct row (in DuckDB). ``stats`` sums the batches.

    Two queries a batch: a narrow one hashes and picks the rows to keep (a GROUP BY over two
    columns, not the whole row), a second one finds, counts and scrubs PII and scores toxicity on them."""

    def __init__(self, scrub: bool = True):
        self.scrub = scrub
        self.con = duck.connect()
        # 16-byte keys (md5 of the normalised conversation) for the rows already kept: the output's
        # content_hash stays the sha256 hex, the state is a quarter of its size
        self.con.execute("CREATE TABLE seen (k1 UBIGINT, k2 UBIGINT)")
        self.rows_in = 0
        self.rows_out = 0
        self.rows_with_pii = 0
        self.by_type = dict.fromkeys(PII_PATTERNS, 0)
        self._keep_sql = f"""
        SELECT min(__pos) AS __pos, any_value(content_hash) AS content_hash,
               any_value(prompt_hash) AS prompt_hash, h.k1, h.k2 FROM (
          SELECT __pos, sha256(nc) AS content_hash, md5_number_upper(nc) AS k1,
                 md5_number_lower(nc) AS k2, sha256(np) AS prompt_hash
          FROM (SELECT __pos, {normalised("prompt")} AS np, {normalised(DEDUP_TEXT)} AS nc FROM batch)
        ) h
        ANTI JOIN seen USING (k1, k2)
        GROUP BY h.k1, h.k2
        ORDER BY __pos
        """
        m = pii_matches("__conv")
        found = ", ".join(f"CASE WHEN len(__m.{n}) > 0 THEN '{n}' END" for n in m)
        subs = " || ".join(
            f"list_transform(__m.{n}, lambda x: {{'needle': x, 'placeholder': '[{n.upper()}]'}})"
            for n in m
        )
        # ordered by row position: the columns are patched back onto the batch by position, and a
        # parallel scan of a table in several chunks does not keep the input order by itself
        self._audit_sql = f"""
        WITH c AS (SELECT *, {CONVERSATION_TEXT} AS __conv FROM kept),
        m AS (
          SELECT * EXCLUDE (__conv),
                 CASE WHEN regexp_matches(__conv, '{ANY_PII}')
                      THEN struct_pack({", ".join(f"{n} := {e}" for n, e in m.items())}) END AS __m
          FROM c
        )
        SELECT {"* EXCLUDE (__m, __subs) " + scrub_columns() if scrub else "NULL AS __none"},
               CASE WHEN __m IS NULL THEN [] ELSE list_filter([{found}], lambda x: x IS NOT NULL) END AS pii_types,
               CAST(coalesce({" + ".join(f"len(__m.{n})" for n in m)}, 0) AS INTEGER) AS pii_count,
               {toxicity_sql("response")} AS toxicity
        FROM (SELECT *, CASE WHEN __m IS NOT NULL THEN {subs} END AS __subs FROM m)
        ORDER BY __kpos
        """

    def feed(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        n = batch.num_rows
        duck.register(
            self.con,
            "batch",
            batch.select(["prompt", "response", "messages"]).append_column(
                "__pos", pa.array(range(n), pa.int64())
            ),
        )
        keep = duck.query(self.con, self._keep_sql)
        self.con.unregister("batch")
        positions = keep.column("__pos").to_numpy()
        if len(positions) < n:  # a boolean filter keeps the chunks (and is cheaper than take)
            mask = np.zeros(n, dtype=bool)
            mask[positions] = True
            batch = batch.filter(pa.array(mask))
        kept = batch.select(["prompt", "response", "messages"])
        duck.register(
            self.con,
            "kept",
            kept.append_column("__kpos", pa.array(range(kept.num_rows), pa.int64())),
        )
        audited = duck.query(self.con, self._audit_sql)
        self.con.unregister("kept")
        replaced = (
            {
                "prompt": pc.coalesce(audited.column("prompt"), batch.column("prompt")),
                "response": pc.coalesce(audited.column("response"), batch.column("response")),
                "messages": patch_messages(batch.column("messages"), audited.column("messages")),
            }
            if self.scrub
            else {}
        )
        for name, column in replaced.items():
            batch = batch.set_column(batch.schema.get_field_index(name), name, column)
        for name in ("content_hash", "prompt_hash"):
            batch = batch.append_column(name, keep.column(name))
        for name in ("pii_types", "pii_count", "toxicity"):
            batch = batch.append_column(name, audited.column(name))
        out = conform(batch, AUDITED_SCHEMA)
        self.con.register("new", keep.select(["k1", "k2"]))
        self.con.execute("INSERT INTO seen SELECT k1, k2 FROM new")
        self.con.unregister("new")
        types = pc.list_flatten(out.column("pii_types"))
        for item in pc.value_counts(types).to_pylist():
            self.by_type[item["values"]] += int(item["counts"])
        self.rows_with_pii += int(pc.sum(pc.greater(out.column("pii_count"), 0)).as_py() or 0)
        self.rows_in += n
        self.rows_out += out.num_rows
        return out

    @property
    def stats(self) -> AuditStats:
        return AuditStats(
            rows_in=self.rows_in,
            duplicates_removed=self.rows_in - self.rows_out,
            rows_out=self.rows_out,
            rows_with_pii=self.rows_with_pii,
            pii_rows_by_type=dict(self.by_type),
            scrubbed=self.scrub,
            toxicity_method=TOXICITY_METHOD,
        )


def audit(
    table: pa.Table, scrub: bool = True, batch_rows: int = 100_000
) -> tuple[pa.Table, AuditStats]:
    """Drop exact duplicates (same normalised conversation; the first occurrence stays), count
    PII by type, score toxicity, scrub PII. Runs the ``Auditor`` stream over ``batch_rows`` slices."""
    auditor = Auditor(scrub=scrub)
    parts = [auditor.feed(table.slice(i, batch_rows)) for i in range(0, table.num_rows, batch_rows)]
    out = pa.concat_tables(parts) if parts else AUDITED_SCHEMA.empty_table()
    return out, auditor.stats
