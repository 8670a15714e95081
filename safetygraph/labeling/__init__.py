"""Labeling: the constitution (label taxonomy and rules), the heuristic judge, the LLM judge,
gold-set metrics against human labels (``gold``) and the human-review loop (``review``)."""
