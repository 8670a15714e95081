"""The quarantine: rows that could not be used, with source, file, line, reason and raw text."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from safetygraph.core.records import QUARANTINE_SCHEMA

MAX_RAW_CHARS = 4_000


class Quarantine:
    def __init__(self, source: str):
        self.source = source
        self.rows: dict[str, list] = {n: [] for n in QUARANTINE_SCHEMA.names}
        self.reasons: Counter[str] = Counter()
        self.unparsed = 0  # rows that never became a parsed row (counted apart from mapped rows)

    def add(self, file: str, line: int, reason: str, raw: str, parsed: bool = False) -> None:
        self.unparsed += not parsed
        self.rows["source"].append(self.source)
        self.rows["file"].append(file)
        self.rows["line"].append(int(line))
        self.rows["reason"].append(reason)
        self.rows["raw"].append(raw[:MAX_RAW_CHARS])
        self.reasons[reason.split(":")[0]] += 1

    def table(self) -> pa.Table:
        """Ordered by file and line (parse and mapping failures are found in different passes)."""
        return pa.table(self.rows, schema=QUARANTINE_SCHEMA).sort_by(
            [("file", "ascending"), ("line", "ascending")]
        )
