"""Recipes: one folder per training-data recipe built from the labelled, audited rows
(``refusal``, ``circuit_breaker``), and the leak-free train/eval ``splits`` they share."""
