"""Audit: exact duplicates (``dedup``), near duplicates (``neardup``: MinHash/LSH), PII (``pii``),
toxicity (``toxicity``) and the streaming per-source ``auditor`` that applies them."""
