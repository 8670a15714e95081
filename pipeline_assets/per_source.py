"""The per-source chain after ingestion: generated_responses -> labels -> audited."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MetadataValue, PartitionsDefinition, asset
from pydantic import Field

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table, value_counts
from resources import BuildConfig, LLMResource
from safetygraph.audit import audit
from safetygraph.generation import GenerationConfig, RequestCache, format_progress, generate
from safetygraph.judge import HeuristicJudge
from safetygraph.llm_judge import LLMJudge, label_two_pass


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
        default=False, description="Send again requests whose cached result is an error"
    )
    progress_interval_s: float = Field(
        default=10.0, description="Seconds between progress lines in the run log"
    )


class JudgeRunConfig(Config):
    """Chosen in the launchpad: which judge labels the rows."""

    judge: str = Field(default="heuristic", description="heuristic (offline), llm, or two_pass")
    judge_role: str = Field(
        default="judge", description="The profile's generation config the LLM judge uses"
    )
    second_judge_role: str = Field(
        default="judge_second", description="two_pass: the second judge's config"
    )
    second_pass_below: float = Field(
        default=0.7, description="two_pass: confidence under which a row goes to the second judge"
    )


def generation_configs(settings: BuildConfig, roles: list[str]) -> list[GenerationConfig]:
    configs = settings.active().generation.get("configs", {})
    missing = [r for r in roles if r not in configs]
    if missing:
        raise ValueError(
            f"profile '{settings.profile}' has no generation config(s) {missing}; it has {sorted(configs)}"
        )
    return [GenerationConfig.from_dict(r, configs[r]) for r in roles]


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
        raw_samples: pa.Table,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> pa.Table:
        configs = generation_configs(settings, config.roles)
        if "attack" in settings.source(context.partition_key).roles:
            available = settings.active().generation.get("configs", {})
            missing = [r for r in config.attack_roles if r not in available]
            if missing:
                context.log.warning(
                    f"{context.partition_key}: profile '{settings.profile}' has no config {missing}: "
                    "attack prompts are not answered anew (no adversarial-safe samples from this source)"
                )
            configs += generation_configs(
                settings, [r for r in config.attack_roles if r in available]
            )
        out, stats = generate(
            raw_samples,
            configs,
            llm.backend,
            cache=RequestCache(settings.storage()),
            chunk_size=config.chunk_size,
            progress=lambda done, total, elapsed: context.log.info(
                f"{context.partition_key}: {format_progress(done, total, elapsed)}"
            ),
            progress_interval_s=config.progress_interval_s,
            retry_cached_errors=config.retry_cached_errors,
        )
        context.log.info(
            f"{context.partition_key}: {stats.generated}/{stats.requests} answered ({stats.cache_hits} from cache, "
            f"{stats.called} called), {stats.passed_through} passed through"
        )
        context.add_output_metadata(
            {
                "roles": ", ".join(c.role for c in configs),
                "models": ", ".join(sorted({c.model for c in configs})),
                "backends": ", ".join(sorted({c.backend for c in configs})),
                "passed_through": stats.passed_through,
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
        )
        return out

    @asset(
        partitions_def=partitions,
        group_name="labeling",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Five-head judge labels (outcome, style, harm categories, harmless topics, flags) "
        "with confidence and rationale, for every row that has a response.",
    )
    def labels(
        context: AssetExecutionContext,
        config: JudgeRunConfig,
        generated_responses: pa.Table,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> pa.Table:
        answered = generated_responses.filter(pc.is_valid(generated_responses.column("response")))
        constitution = settings.constitution()
        judge_stats: dict = {}
        if config.judge == "heuristic":
            judge_name = HeuristicJudge.name
            out = HeuristicJudge(constitution).label(answered)
        else:
            cache = RequestCache(settings.storage())

            def llm_judge(role: str) -> LLMJudge:
                (gen,) = generation_configs(settings, [role])
                return LLMJudge(gen, constitution, llm.backend, cache=cache)

            first = llm_judge(config.judge_role)
            judge_name = first.name
            if config.judge == "llm":
                out = first.label(answered)
                judge_stats = first.stats
            else:
                second = llm_judge(config.second_judge_role)
                out, judge_stats = label_two_pass(answered, first, second, config.second_pass_below)
                judge_name = f"{first.name} then {second.name}"
        context.add_output_metadata(
            {
                "judge": judge_name,
                "judge_stats": MetadataValue.json(judge_stats),
                "constitution": settings.constitution().name,
                "rows_without_response": generated_responses.num_rows - answered.num_rows,
                "outcomes": counts_table("outcome", value_counts(out, "label_outcome")),
                "mean_confidence": MetadataValue.float(
                    round(pc.mean(out.column("label_confidence")).as_py() or 0.0, 4)
                ),
            }
        )
        return out

    @asset(
        partitions_def=partitions,
        group_name="audit",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Labels with exact duplicates removed; PII (email, phone, SSN, Luhn-valid card, IP, street "
        "address, API keys) counted and scrubbed to [TYPE] placeholders in every turn.",
    )
    def audited(
        context: AssetExecutionContext, labels: pa.Table, settings: BuildConfig
    ) -> pa.Table:
        out, stats = audit(labels, scrub=bool(settings.active().thresholds.get("scrub_pii", True)))
        context.add_output_metadata(
            {
                "duplicates_removed": stats["duplicates_removed"],
                "rows_with_pii": stats["rows_with_pii"],
                "pii_scrubbed": stats["scrubbed"],
                "pii_rows_by_type": counts_table("pii type", stats["pii_rows_by_type"]),
            }
        )
        return out

    return [generated_responses, labels, audited]
