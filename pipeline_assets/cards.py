"""What a build's dataset card needs from Dagster: the gates (the blocking checks on the recipe's
assets, as last evaluated on the instance) and the card hook the file writers call before their
manifest (safetygraph/export/card.py renders and validates it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from dagster import AssetCheckKey, AssetExecutionContext, AssetKey
from safetygraph.location.resources import BuildConfig

from safetygraph.audit.decont import summary as decont_summary
from safetygraph.core.builds import CardHook
from safetygraph.core.paths import resolve_repo_path
from safetygraph.export.card import CardFacts, card_file, source_facts


def gates(
    context: AssetExecutionContext,
    assets: Iterable[AssetKey],
    extra: Iterable[AssetCheckKey] = (),
) -> list[dict[str, Any]]:
    """The blocking checks on ``assets`` (those of the run's job, plus ``extra``: the blocking
    checks of assets another job materializes) with their latest result and scalar figures."""
    graph = context.job_def.asset_layer.asset_graph
    keys = [
        k for k in graph.get_check_keys_for_assets(set(assets)) if graph.get_check_spec(k).blocking
    ]
    keys += [k for k in extra if k not in keys]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key in sorted(keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = latest.get(key)
        evaluation = (
            record.event.dagster_event.event_specific_data
            if record is not None and record.event is not None and record.event.dagster_event
            else None
        )
        if evaluation is None or not hasattr(evaluation, "passed"):
            continue
        figures = {
            name: m.value
            for name, m in evaluation.metadata.items()
            if isinstance(getattr(m, "value", None), (int, float, str, bool))
            and len(str(m.value)) <= 40
        }
        out.append(
            {
                "check": key.name,
                "asset": key.asset_key.to_user_string(),
                "passed": bool(evaluation.passed),
                "figures": figures,
            }
        )
    return out


def decontamination_facts(settings: BuildConfig, table: pa.Table) -> dict[str, Any]:
    """The profile's rules and the counts of a recipe's decontamination table (manifest, card)."""
    return {**settings.active().decontamination.as_dict, **decont_summary(table)}


def card_hook(
    context: AssetExecutionContext,
    settings: BuildConfig,
    *,
    recipe: str,
    title: str,
    summary: str,
    configs: dict[str, dict[str, str]],
    sources: Iterable[str],
    rows_by_source: dict[str, int],
    gate_assets: Iterable[AssetKey],
    decontamination: dict[str, Any],
    generation: list[dict[str, Any]] | None = None,
    judge: list[dict[str, Any]] | None = None,
    limitations: list[str] | None = None,
    gate_checks: Iterable[AssetCheckKey] = (),
) -> CardHook:
    profile = settings.active()
    tokenizer = profile.thresholds.preflight_tokenizer
    facts = CardFacts(
        recipe=recipe,
        title=title,
        summary=summary,
        profile=profile.name,
        sources=source_facts([settings.source(s) for s in sources], rows_by_source),
        configs=configs,
        generation=generation or [],
        judge=judge or [],
        gates=gates(context, gate_assets, gate_checks),
        decontamination=decontamination,
        limitations=limitations or [],
        tokenizer=str(tokenizer) if tokenizer else None,
        version=settings.export_version or None,
    )

    def load_tokenizer():
        from safetygraph.recipes.circuit_breaker.preflight import ChatTokenizer

        return ChatTokenizer.load(resolve_repo_path(str(tokenizer))).tokenizer

    return lambda entries, opener: card_file(
        facts, entries, opener, load_tokenizer if tokenizer else None
    )


def config_rows(settings: BuildConfig, roles: list[str | None]) -> list[dict[str, Any]]:
    """The generation configs of ``roles`` as the card's rows (model, backend, temperature,
    max_tokens)."""
    configs = settings.active().generation
    return [
        {
            "model": configs[r].model,
            "backend": configs[r].backend,
            "temperature": configs[r].temperature,
            "max_tokens": configs[r].max_tokens,
            "rows": f"({r})",
        }
        for r in dict.fromkeys(x for x in roles if x)
        if r in configs
    ]
