"""The per-source chain after ingestion: generated_responses -> labels -> audited."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MetadataValue, PartitionsDefinition, asset
from pydantic import Field

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table, value_counts
from resources import BuildConfig, LLMResource
from safetygraph.audit import audit
from safetygraph.generation import GenerationConfig, generate
from safetygraph.judge import HeuristicJudge


class GenerationRunConfig(Config):
    """Choose in the launchpad which of the profile's generation configs answers prompt-only rows."""

    role: str = Field(
        default="target",
        description="A generation config of the active profile: target, direct or teacher",
    )


def build(partitions: PartitionsDefinition):
    @asset(
        partitions_def=partitions,
        group_name="generation",
        kinds={"python", "parquet"},
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
        configs = settings.active().generation.get("configs", {})
        if config.role not in configs:
            raise ValueError(
                f"profile '{settings.profile}' has no generation config '{config.role}'; it has {sorted(configs)}"
            )
        gen = GenerationConfig.from_dict(config.role, configs[config.role])
        out, stats = generate(raw_samples, gen, llm.backend(gen))
        context.log.info(
            f"{context.partition_key}: {stats.generated}/{stats.requested} generated, {stats.passed_through} passed through"
        )
        context.add_output_metadata(
            {
                "role": gen.role,
                "model": gen.model,
                "backend": gen.backend,
                "passed_through": stats.passed_through,
                "requested": stats.requested,
                "generated": stats.generated,
                "errors": counts_table("error", stats.errors),
                "error_count": sum(stats.errors.values()),
                "tokens_in": stats.tokens_in,
                "tokens_out": stats.tokens_out,
                "rows_per_second": MetadataValue.float(stats.as_dict()["rows_per_second"] or 0.0),
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
        context: AssetExecutionContext, generated_responses: pa.Table, settings: BuildConfig
    ) -> pa.Table:
        answered = generated_responses.filter(pc.is_valid(generated_responses.column("response")))
        judge = HeuristicJudge(settings.constitution())
        out = judge.label(answered)
        context.add_output_metadata(
            {
                "judge": judge.name,
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
        description="Labels with exact duplicates removed and PII (email, phone, SSN, Luhn-valid card numbers) detected.",
    )
    def audited(context: AssetExecutionContext, labels: pa.Table) -> pa.Table:
        out, stats = audit(labels)
        context.add_output_metadata(
            {
                "duplicates_removed": stats["duplicates_removed"],
                "rows_with_pii": stats["rows_with_pii"],
                "pii_rows_by_type": counts_table("pii type", stats["pii_rows_by_type"]),
            }
        )
        return out

    return [generated_responses, labels, audited]
