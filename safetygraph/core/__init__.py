"""Foundations every stage shares: the canonical record schemas (``records``), DuckDB helpers
(``duck``), atomic fsspec storage (``storage``), threaded streaming (``streaming``) and repo paths."""
