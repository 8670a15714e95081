"""The steering recipe (CAA pairs), one partition per trait: trait_answers (the GPU / API step),
steering_pairs, and the files, downstream of every steering gate. A backfill over several traits
is the seed's "several traits per run"."""

from collections.abc import Mapping, Sequence

import pyarrow as pa
from dagster import (
    AllPartitionMapping,
    AssetCheckKey,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from pydantic import Field

from pipeline_assets.keys import (
    OWNER,
    RAW_SAMPLES,
    STEERING_CHAIN,
    STEERING_PAIRS,
)
from pipeline_assets.metadata import counts_table, manifest_files
from pipeline_assets.source_status import MergeConfig, ready_sources, status_markdown
from resources import BuildConfig, LLMResource
from safetygraph.core import duck
from safetygraph.core.storage import asset_parts
from safetygraph.export.qa_file import profile_thresholds, qa_file
from safetygraph.generation import RequestCache, format_progress
from safetygraph.recipes.steering.answers import ANSWER_SCHEMA, scenarios
from safetygraph.recipes.steering.answers import trait_answers as answer_trait
from safetygraph.recipes.steering.files import STEERING_ROOT, write_files
from safetygraph.recipes.steering.pairs import build_pairs, summary
from safetygraph.recipes.steering.pairs import kept as kept_pairs

GROUP = "steering"


class SteeringRunConfig(Config):
    """Chosen in the launchpad: checkpointing and progress of the trait answers."""

    chunk_size: int = Field(
        default=100, description="Results per durable checkpoint (the seed: 100)"
    )
    progress_interval_s: float = Field(default=10.0, description="Seconds between progress lines")


def _scenario_rows(settings: BuildConfig, sources: list[str]) -> pa.Table:
    storage = settings.storage()
    return pa.concat_tables(
        [storage.read_table(*asset_parts(RAW_SAMPLES.path, s)) for s in sources]
    )


def _limited(table: pa.Table, limit: int | None, seed: int) -> pa.Table:
    """At most ``limit`` scenarios, the same ones every run (ordered by a seeded hash of the id)."""
    if not limit or table.num_rows <= limit:
        return table
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    picked = duck.query(
        con,
        "SELECT __pos FROM t ORDER BY sha256(scenario_id || ':' || CAST(? AS VARCHAR)) LIMIT ?",
        [seed, int(limit)],
    )
    return table.take(picked.column("__pos").sort())


def build(
    traits: PartitionsDefinition,
    source_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
    trait_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
    generation_op_tags: dict | None = None,
):
    @asset(
        partitions_def=traits,
        deps=[AssetDep(RAW_SAMPLES, partition_mapping=AllPartitionMapping())],
        group_name=GROUP,
        kinds={"python", "parquet"},
        op_tags=generation_op_tags or None,
        owners=[OWNER],
        description="For one trait and each scenario of the profile's steering sources: a trait-positive "
        "and a neutral description of the scenario's character, and what it would say under each "
        "(four requests a scenario through the LLM resource: cached, checkpointed, resumable).",
    )
    def trait_answers(
        context: AssetExecutionContext,
        config: SteeringRunConfig,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> pa.Table:
        steer = settings.active().steering
        sources = list(steer.get("sources") or ())
        if not sources:
            raise Failure(description=f"profile '{settings.profile}' lists no steering.sources")
        ready, statuses = ready_sources(
            context.instance, sources, source_checks, False, chain=(RAW_SAMPLES,)
        )
        rows = _scenario_rows(settings, ready)
        table = _limited(
            scenarios(
                rows,
                steer.get("character_key", "PersonX"),
                steer.get("default_character", "the main character"),
            ),
            steer.get("limit"),
            settings.active().seed,
        )
        book = settings.traits()
        trait = book.trait(context.partition_key)
        (gen,) = settings.generation_configs([steer.get("config", "steering")])
        answers, stats = answer_trait(
            table,
            trait,
            book,
            gen,
            llm.backend,
            cache=RequestCache(settings.storage()),
            chunk_size=config.chunk_size,
            progress=lambda done, total, elapsed: context.log.info(
                f"{trait.name}: {format_progress(done, total, elapsed)}"
            ),
        )
        context.add_output_metadata(
            {
                "trait": trait.name,
                "family": trait.family,
                "scenarios": table.num_rows,
                "sources": MetadataValue.md(status_markdown(statuses)),
                "model": gen.model,
                "requests": sum(s.requests for s in stats.values()),
                "cache_hits": sum(s.cache_hits for s in stats.values()),
                "called": sum(s.called for s in stats.values()),
                "errors": sum(sum(s.errors.values()) for s in stats.values()),
            }
        )
        return answers

    @asset(
        partitions_def=traits,
        group_name=GROUP,
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="A/B steering questions of one trait ([Situation] / [Question] / 1. / 2. / [Answer]) "
        "with the option order balanced; every candidate kept with its drop_reason (null = usable), "
        "the offline judge flagging positive answers that do not express the trait.",
    )
    def steering_pairs(
        context: AssetExecutionContext, trait_answers: pa.Table, settings: BuildConfig
    ) -> pa.Table:
        trait = settings.traits().trait(context.partition_key)
        ratio = float(settings.active().steering.get("max_length_ratio", 3.0))
        pairs = build_pairs(trait_answers.cast(ANSWER_SCHEMA), trait, ratio)
        s = summary(pairs)
        context.add_output_metadata(
            {
                "candidates": s["candidates"],
                "pairs": s["kept"],
                "positive_first_share": MetadataValue.float(s["positive_first_share"] or 0.0),
                "dropped": counts_table("reason", s["dropped"]),
            }
        )
        return pairs

    @asset(
        deps=[STEERING_PAIRS],
        group_name=GROUP,
        kinds={"json", "parquet"},
        owners=[OWNER],
        description="The steering files of the profile's traits: the seed's format (question, positive, "
        "neutral) and the CAA paper's (answer_matching_behavior / answer_not_matching_behavior), JSONL "
        "and Parquet per trait, stats.json and a manifest under steering/<build_id>/; only traits whose "
        "gates passed are read.",
    )
    def steering_files(
        context: AssetExecutionContext, config: MergeConfig, settings: BuildConfig
    ) -> pa.Table:
        steer = settings.active().steering
        names = list(steer.get("traits") or settings.traits().names)
        ready, statuses = ready_sources(
            context.instance, names, trait_checks, config.allow_partial, chain=STEERING_CHAIN
        )
        storage = settings.storage()
        kept = {}
        stats = {}
        for name in ready:
            pairs = storage.read_table(*asset_parts(STEERING_PAIRS.path, name))
            kept[name] = kept_pairs(pairs)
            stats[name] = summary(pairs)
        if not kept:
            raise Failure(
                description="no trait is ready: materialize steering_pairs for the traits first"
            )
        manifest = write_files(
            storage,
            kept,
            stats,
            settings.export_version or None,
            lambda path: qa_file(path, profile_thresholds(settings.active().thresholds)),
        )
        files_md, files_table = manifest_files(manifest)
        context.add_output_metadata(
            {
                "files": files_md,
                "build_id": manifest["build_id"],
                "path": MetadataValue.path(storage.uri(STEERING_ROOT, manifest["build_id"])),
                "traits": MetadataValue.md(status_markdown(statuses)),
                "pairs_per_trait": counts_table("trait", {t: p.num_rows for t, p in kept.items()}),
            }
        )
        return files_table

    return [trait_answers, steering_pairs, steering_files]
