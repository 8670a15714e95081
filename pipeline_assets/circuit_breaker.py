"""Circuit-breaker shards (harmful Ds, retain Dr) and the leak-free train/eval split."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, AssetOut, Output, multi_asset

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table, value_counts
from resources import BuildConfig
from safetygraph.merge import circuit_breaker_shards, train_eval_split


def build():
    @multi_asset(
        name="cb_shards",
        outs={
            "harmful_shard": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Ds: responses that comply with a harmful request (the circuit breaker's harmful set).",
            ),
            "retain_shard": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Dr: benign requests answered and harmful ones refused (over-refusals are left out); "
                "attack prompts answered with a refusal are adversarial-safe.",
            ),
        },
    )
    def cb_shards(context: AssetExecutionContext, refusal_dataset: pa.Table):
        harmful, retain, over_refusals = circuit_breaker_shards(refusal_dataset)
        adv = int(pc.sum(retain.column("is_adversarial_safe")).as_py() or 0)
        ratio = retain.num_rows / harmful.num_rows if harmful.num_rows else float("inf")
        context.log.info(
            f"Ds={harmful.num_rows} Dr={retain.num_rows} ratio={ratio:.2f} adversarial_safe={adv}"
        )
        yield Output(
            harmful,
            "harmful_shard",
            metadata={
                "rows": harmful.num_rows,
                "by_source": counts_table("source", value_counts(harmful, "source")),
            },
        )
        yield Output(
            retain,
            "retain_shard",
            metadata={
                "rows": retain.num_rows,
                "adversarial_safe": adv,
                "over_refusals_left_out": over_refusals,
                "dr_ds_ratio": round(ratio, 4) if harmful.num_rows else -1.0,
                "by_source": counts_table("source", value_counts(retain, "source")),
            },
        )

    @multi_asset(
        name="cb_split",
        outs={
            "train_split": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Training rows (Ds and Dr), stratified by source and class.",
            ),
            "eval_split": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="The eval holdout; no prompt appears on both sides.",
            ),
        },
    )
    def cb_split(
        context: AssetExecutionContext,
        harmful_shard: pa.Table,
        retain_shard: pa.Table,
        settings: BuildConfig,
    ):
        fraction = float(settings.threshold("eval_fraction"))
        threshold = float(settings.active().thresholds.get("near_dup_threshold", 0.8))
        train, evals = train_eval_split(
            harmful_shard, retain_shard, fraction, settings.active().seed, threshold
        )
        context.log.info(f"train={train.num_rows} eval={evals.num_rows} (eval fraction {fraction})")
        for name, table in (("train_split", train), ("eval_split", evals)):
            yield Output(
                table,
                name,
                metadata={
                    "rows": table.num_rows,
                    "by_class": counts_table("class", value_counts(table, "cb_class")),
                    "by_source": counts_table("source", value_counts(table, "source")),
                },
            )

    return [cb_shards, cb_split]
