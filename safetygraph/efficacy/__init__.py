"""Efficacy: does training on a recipe's files do what the recipe is for? Each recipe gets a short,
seeded training or steering run on a small real model and a before/after measurement on the
recipe's held-out rows (``steering``: CAA vectors, ``preference``: DPO through TRL, ``refusal``: a
refusal detector, ``circuit_breaker``: representation rerouting). Plain Python over the files a
build published; the Dagster assets in ``pipeline_assets/efficacy.py`` wire them in. Every run can
be repeated on a shuffled control (``control=True``: labels or pairs permuted with the same seed),
which ``bench/efficacy.py`` prints beside the real figures.

Needs the ``efficacy`` extra (torch, transformers, trl, peft, steering-vectors; the refusal detector
only scikit-learn). ``missing(recipe)`` names what is missing, so the asset is skipped with the
reason instead of failing."""

from safetygraph.efficacy.base import EfficacyResult, EfficacySkipped, missing

__all__ = ["EfficacyResult", "EfficacySkipped", "missing"]
