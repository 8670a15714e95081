"""generated_responses: answers for prompt-only rows, one partition per source (the GPU / API step)."""

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from pydantic import Field
from safetygraph.location.pipeline_assets.keys import OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table
from safetygraph.location.resources import BuildConfig, LLMResource

from safetygraph.core.records import GENERATED_SCHEMA
from safetygraph.core.tables import StoredTable, TableStream
from safetygraph.generation import RequestCache, format_progress
from safetygraph.generation.planning import GenerationPlan, GenerationRun


class GenerationRunConfig(Config):
    """Chosen in the launchpad: which of the profile's generation configs answer prompt-only rows."""

    roles: list[str] = Field(
        default=["target"],
        description="Generation configs of the active profile (e.g. target, direct, teacher); each answers every prompt-only row",
    )
    attack_roles: list[str] = Field(
        default=["adversarial_safe"],
        description="Attack sources only: configs (answers: attacks) that answer the attack prompts "
        "anew with the tools attached; their safe answers are the adversarial-safe retain samples",
    )
    chunk_size: int = Field(
        default=256, description="Results per durable checkpoint in the request cache"
    )
    retry_cached_errors: bool = Field(
        default=True,
        description="Send again, on a re-run, the requests whose cached result is an error (off: the "
        "cached error is served, as for a request the API rejects for good)",
    )
    progress_interval_s: float = Field(
        default=10.0, description="Seconds between progress lines in the run log"
    )
    answer_recorded_gaps: bool = Field(
        default=False,
        description="A source with recorded responses: also generate for its few rows without one "
        "(default: they pass through unanswered and are counted, so the source needs no model server)",
    )


def _configs(context: AssetExecutionContext, config: GenerationRunConfig, settings: BuildConfig):
    """The run's configs: its roles, plus the attack roles for an attack source (a role the
    profile lacks is named in the log)."""
    name = context.partition_key
    configs = settings.generation_configs(config.roles)
    if "attack" in settings.source(name).roles:
        available = settings.active().generation
        missing = [r for r in config.attack_roles if r not in available]
        if missing:
            context.log.warning(
                f"{name}: profile '{settings.profile}' has no config {missing}: "
                "attack prompts are not answered anew (no adversarial-safe samples from this source)"
            )
        configs += settings.generation_configs([r for r in config.attack_roles if r in available])
    return configs


def _figures(run: GenerationRun) -> dict:
    stats, configs = run.stats, run.plan.configs
    return {
        "roles": ", ".join(c.role for c in configs),
        "models": ", ".join(sorted({c.model for c in configs})),
        "backends": ", ".join(sorted({c.backend for c in configs})),
        "passed_through": stats.passed_through,
        "recorded_without_response": run.gaps,
        "requests": stats.requests,
        "cache_hits": stats.cache_hits,
        "called": stats.called,
        "generated": stats.generated,
        "errors": counts_table("error kind", stats.errors),
        "error_count": sum(stats.errors.values()),
        "tokens_in": stats.tokens_in,
        "tokens_out": stats.tokens_out,
        "requests_per_second": MetadataValue.float(stats.as_dict()["requests_per_second"] or 0.0),
        "estimated_cost": MetadataValue.float(stats.estimated_cost)
        if stats.estimated_cost is not None
        else MetadataValue.text("no price configured"),
        "checkpoints_written": stats.chunks_written,
    }


def generated_responses(
    context: AssetExecutionContext,
    config: GenerationRunConfig,
    raw_samples: StoredTable,
    settings: BuildConfig,
    llm: LLMResource,
) -> TableStream:
    name = context.partition_key
    plan = GenerationPlan.for_source(
        raw_samples,
        _configs(context, config, settings),
        settings.source(name).has_responses,
        config.answer_recorded_gaps,
    )
    problem = plan.missing_server(name, llm.openai_base_url)
    if problem:
        raise Failure(problem)
    run = GenerationRun(
        plan,
        llm.backend,
        cache=RequestCache(settings.storage()),
        batch_rows=settings.batch_rows,
        progress=lambda k: (
            lambda done, total, elapsed: context.log.info(
                f"{name}: batch {k}: {format_progress(done, total, elapsed)}"
            )
        ),
        options={
            "chunk_size": config.chunk_size,
            "progress_interval_s": config.progress_interval_s,
            "retry_cached_errors": config.retry_cached_errors,
        },
    )

    def figures(_written: StoredTable) -> dict:
        s = run.stats
        context.log.info(
            f"{name}: {s.generated}/{s.requests} answered ({s.cache_hits} from cache, "
            f"{s.called} called), {s.passed_through} passed through, {run.gaps} recorded rows "
            "without a response left unanswered"
        )
        return _figures(run)

    return TableStream(GENERATED_SCHEMA, run.batches(raw_samples), figures)


def build(partitions: PartitionsDefinition, generation_op_tags: dict | None = None) -> list:
    """The asset over the registry's partitions, on GPU nodes when the profile places it there."""
    return [
        asset(
            name="generated_responses",
            partitions_def=partitions,
            group_name="generation",
            kinds={"python", "parquet"},
            op_tags=generation_op_tags or None,
            owners=[OWNER],
            description="Responses for prompt-only rows from the chosen generation config; rows "
            "that carry a response pass through. Failed requests keep their row with the error "
            "recorded.",
        )(generated_responses)
    ]
