"""The merged stage-2 set as a stream: Ds then Dr, batch by batch, with the rows longer than the
target's ``max_seq_length`` left out and counted by source when the profile says
``over_length: drop`` (the default, ``fail``, keeps them and the preflight gate blocks the set)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core.tables import StoredTable, table_batches
from safetygraph.recipes.circuit_breaker.preflight_run import PreflightRun


@dataclass
class Stage2Stream:
    """``batches()`` yields the shards in order; ``dropped`` (source -> rows) fills as they stream.
    Each batch is rendered by ``run`` once per build (the preflight gate later reads the same rows
    from its cache); ``run`` is closed when the stream ends."""

    shards: Sequence[StoredTable | pa.Table]
    batch_rows: int
    run: PreflightRun | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(s.num_rows for s in self.shards)

    def batches(self) -> Iterator[pa.RecordBatch | pa.Table]:
        total = self.total
        try:
            for shard in self.shards:
                for batch in table_batches(shard, self.batch_rows):
                    if self.run is not None and batch.num_rows:
                        over = self.run.report(batch, rows_expected=total).column("over_length")
                        self._count(batch.filter(over))
                        batch = batch.filter(pc.invert(over))
                    yield batch
        finally:
            if self.run is not None:
                self.run.close()

    def _count(self, over: pa.RecordBatch | pa.Table) -> None:
        if not over.num_rows:
            return
        for d in pc.value_counts(over.column("source")).to_pylist():
            key = str(d["values"])
            self.dropped[key] = self.dropped.get(key, 0) + int(d["counts"])

    def log_line(self) -> str:
        if self.run is None:
            return "over_length: fail (nothing left out)"
        return (
            f"left out over max_seq_length {self.run.setup.max_seq_length}: {self.dropped} "
            f"({self.run.rendered} rendered, {self.run.from_cache} from the preflight cache)"
        )
