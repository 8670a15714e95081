"""generated_responses: answers for prompt-only rows, one partition per source (the GPU / API step)."""

import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from pydantic import Field

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table
from resources import BuildConfig, LLMResource
from safetygraph.core import duck
from safetygraph.core.records import GENERATED_SCHEMA, conform
from safetygraph.core.tables import StoredTable, TableStream, as_relation, table_batches
from safetygraph.generation import GenerationStats, RequestCache, format_progress, generate


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


def build(partitions: PartitionsDefinition, generation_op_tags: dict | None = None):
    @asset(
        partitions_def=partitions,
        group_name="generation",
        kinds={"python", "parquet"},
        op_tags=generation_op_tags or None,
        owners=[OWNER],
        description="Responses for prompt-only rows from the chosen generation config; rows that carry a "
        "response pass through. Failed requests keep their row with the error recorded.",
    )
    def generated_responses(
        context: AssetExecutionContext,
        config: GenerationRunConfig,
        raw_samples: StoredTable,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> TableStream:
        name = context.partition_key
        configs = settings.generation_configs(config.roles)
        if "attack" in settings.source(name).roles:
            available = settings.active().generation.get("configs", {})
            missing = [r for r in config.attack_roles if r not in available]
            if missing:
                context.log.warning(
                    f"{name}: profile '{settings.profile}' has no config {missing}: "
                    "attack prompts are not answered anew (no adversarial-safe samples from this source)"
                )
            configs += settings.generation_configs(
                [r for r in config.attack_roles if r in available]
            )
        spec = settings.source(name)
        con = duck.connect()
        without = duck.one(
            con,
            f"SELECT count(*) FILTER (WHERE response IS NULL) FROM {as_relation(con, raw_samples, 'raw')}",
        )[0]
        con.close()
        # recorded answers: the rows without one (a transcript ending on the user) stay unanswered
        leave_gaps = spec.has_responses and not config.answer_recorded_gaps
        prompt_only = 0 if leave_gaps else without
        offline = {"replay", "transformers", "vllm"}
        need_server = [c for c in configs if c.backend not in offline and c.answers == "prompts"]
        if prompt_only and need_server and not llm.openai_base_url:
            raise Failure(
                f"source '{name}': {prompt_only} prompt-only row(s) need an answer from "
                f"generation config '{need_server[0].role}' (backend {need_server[0].backend}, model "
                f"{need_server[0].model}) and no model server is set: export SAFETYGRAPH_OPENAI_BASE_URL, "
                "or use a profile whose configs answer offline"
            )
        cache = RequestCache(settings.storage())
        stats = GenerationStats()
        gaps = 0

        def batches():
            nonlocal gaps
            for k, batch in enumerate(table_batches(raw_samples, settings.batch_rows), 1):
                held = batch.slice(0, 0)
                if leave_gaps:
                    missing = pc.is_null(batch.column("response"))
                    held, batch = batch.filter(missing), batch.filter(pc.invert(missing))
                    gaps += held.num_rows
                out, batch_stats = generate(
                    batch,
                    configs,
                    llm.backend,
                    cache=cache,
                    chunk_size=config.chunk_size,
                    progress=lambda done, total, elapsed, k=k: context.log.info(
                        f"{name}: batch {k}: {format_progress(done, total, elapsed)}"
                    ),
                    progress_interval_s=config.progress_interval_s,
                    retry_cached_errors=config.retry_cached_errors,
                )
                stats.add(batch_stats)
                yield out
                if held.num_rows:
                    yield conform(held, GENERATED_SCHEMA)

        def figures(_written: StoredTable) -> dict:
            context.log.info(
                f"{name}: {stats.generated}/{stats.requests} answered ({stats.cache_hits} from cache, "
                f"{stats.called} called), {stats.passed_through} passed through, {gaps} recorded rows "
                "without a response left unanswered"
            )
            return {
                "roles": ", ".join(c.role for c in configs),
                "models": ", ".join(sorted({c.model for c in configs})),
                "backends": ", ".join(sorted({c.backend for c in configs})),
                "passed_through": stats.passed_through,
                "recorded_without_response": gaps,
                "requests": stats.requests,
                "cache_hits": stats.cache_hits,
                "called": stats.called,
                "generated": stats.generated,
                "errors": counts_table("error kind", stats.errors),
                "error_count": sum(stats.errors.values()),
                "tokens_in": stats.tokens_in,
                "tokens_out": stats.tokens_out,
                "requests_per_second": MetadataValue.float(
                    stats.as_dict()["requests_per_second"] or 0.0
                ),
                "estimated_cost": MetadataValue.float(stats.estimated_cost)
                if stats.estimated_cost is not None
                else MetadataValue.text("no price configured"),
                "checkpoints_written": stats.chunks_written,
            }

        return TableStream(GENERATED_SCHEMA, batches(), figures)

    return [generated_responses]
