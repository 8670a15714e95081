"""A source's candidate pairs, by the way the profile makes them (``preference.mode``):

- recorded: a source with the role ``preference`` (e.g. hh-rlhf) carries both sides;
- roles (default): the profile's chosen config (teacher) answers against its rejected config
  (direct);
- samples: ``samples`` answers of one config (sampler), paired by the judge.

Answering and judging are the caller's (``answer(prompts, config)`` returns the judged side,
``judged(generated)`` judges recorded answers), so this module needs no backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.generation import GenerationConfig
from safetygraph.recipes.preference.pairs import (
    pairs_from_samples,
    pairs_from_sides,
    recorded_sides,
)
from safetygraph.sources.recipe_settings import PreferenceSettings


def candidate_pairs(
    raw: pa.Table,
    roles: Sequence[str],
    pref: PreferenceSettings,
    judged: Callable[[pa.Table], pa.Table],
    answer: Callable[[pa.Table, GenerationConfig], pa.Table],
    configs_for: Callable[[list[str]], list[GenerationConfig]],
    infer_categories: bool = False,
) -> tuple[pa.Table, str]:
    """(candidate pairs, how they were made) for one source's rows ``raw``."""
    if "preference" in roles:
        prompts, chosen, rejected, reasons = recorded_sides(raw, pref.rejected_key)
        pairs = pairs_from_sides(
            prompts, judged(chosen), judged(rejected), "recorded", reasons, infer_categories
        )
        return pairs, "recorded pairs"
    prompts = raw.filter(pc.is_null(raw.column("response")))
    if pref.mode == "roles":
        chosen_cfg, rejected_cfg = configs_for([pref.chosen, pref.rejected])
        pairs = pairs_from_sides(
            prompts,
            answer(prompts, chosen_cfg),
            answer(prompts, rejected_cfg),
            "roles",
            infer_categories=infer_categories,
        )
        return pairs, (
            f"chosen: {chosen_cfg.role} ({chosen_cfg.model}), "
            f"rejected: {rejected_cfg.role} ({rejected_cfg.model})"
        )
    (sampler,) = configs_for([pref.sampler])
    n = int(pref.samples)
    samples = [
        answer(prompts, replace(sampler, seed=sampler.seed + k, samples=1)) for k in range(n)
    ]
    pairs = pairs_from_samples(prompts, samples, infer_categories)
    return pairs, f"judged: {n} samples of {sampler.role} ({sampler.model})"
