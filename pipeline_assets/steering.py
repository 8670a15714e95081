"""The steering recipe (CAA pairs), one partition per trait: trait_answers (the GPU / API step),
steering_pairs, and the files, downstream of every steering gate. A backfill over several traits
is the seed's "several traits per run"."""

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
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
from safetygraph.location.pipeline_assets.cards import card_hook, config_rows, decontamination_facts
from safetygraph.location.pipeline_assets.decontamination import (
    decontaminate,
    decontamination_metadata,
)
from safetygraph.location.pipeline_assets.keys import (
    EVAL_PROMPTS,
    OWNER,
    RAW_SAMPLES,
    STEERING_CHAIN,
    STEERING_DECONTAMINATION,
    STEERING_PAIRS,
)
from safetygraph.location.pipeline_assets.metadata import counts_table, manifest_files, value_counts
from safetygraph.location.pipeline_assets.source_status import (
    MergeConfig,
    ready_sources,
    status_markdown,
)
from safetygraph.location.resources import BuildConfig, LLMResource

from safetygraph.core.tables import read_all
from safetygraph.export.qa_file import profile_thresholds, qa_file
from safetygraph.generation import RequestCache, format_progress
from safetygraph.recipes.steering.answers import ANSWER_SCHEMA, scenarios
from safetygraph.recipes.steering.answers import trait_answers as answer_trait
from safetygraph.recipes.steering.files import STEERING_ROOT, write_files
from safetygraph.recipes.steering.pairs import build_pairs, summary
from safetygraph.recipes.steering.pairs import kept as kept_pairs
from safetygraph.recipes.steering.sampling import sample_scenarios

GROUP = "steering"


class SteeringRunConfig(Config):
    """Chosen in the launchpad: checkpointing and progress of the trait answers."""

    chunk_size: int = Field(
        default=100, description="Results per durable checkpoint (the seed: 100)"
    )
    progress_interval_s: float = Field(default=10.0, description="Seconds between progress lines")


STEERING_LIMITATIONS = [
    "Trait expression is judged offline by marker words; a pair whose positive answer shows no "
    "marker is dropped (counted in stats.json), not checked by people.",
    "Decontamination compares the scenarios with the evaluation prompts.",
    "Sources keep their own licences (table above).",
]


def pairs_by_source(kept: dict[str, pa.Table]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in kept.values():
        for k, v in value_counts(table, "source").items():
            out[k] = out.get(k, 0) + v
    return out


def _scenario_rows(settings: BuildConfig, sources: list[str]) -> pa.Table:
    tables = settings.stored_partitions(RAW_SAMPLES, sources)
    return pa.concat_tables([read_all(t) for t in tables.values()])


DECONT_SPEC = dict(
    deps=[AssetDep(RAW_SAMPLES, partition_mapping=AllPartitionMapping())],
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="Scenarios of the profile's steering sources kept out of the pairs: their text "
    "is an evaluation prompt, a copy or a near copy of one (set, prompt, rule, n-gram or "
    "Jaccard; prompt_hash holds the scenario id). The steering files have no eval side, so the "
    "rows of an evaluation set are removed too.",
)

ANSWERS_SPEC = dict(
    deps=[AssetDep(RAW_SAMPLES, partition_mapping=AllPartitionMapping())],
    group_name=GROUP,
    kinds={"python", "parquet"},
    owners=[OWNER],
    description="For one trait and each scenario of the profile's steering sources: a trait-positive "
    "and a neutral description of the scenario's character, and what it would say under each "
    "(four requests a scenario through the LLM resource: cached, checkpointed, resumable).",
)

PAIRS_SPEC = dict(
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="A/B steering questions of one trait ([Situation] / [Question] / 1. / 2. / [Answer]) "
    "with the option order balanced; every candidate kept with its drop_reason (null = usable), "
    "the offline judge flagging positive answers that do not express the trait.",
)

FILES_SPEC = dict(
    deps=[STEERING_PAIRS],
    group_name=GROUP,
    kinds={"json", "parquet"},
    owners=[OWNER],
    description="The steering files of the profile's traits: the seed's format (question, positive, "
    "neutral) and the CAA paper's (answer_matching_behavior / answer_not_matching_behavior), JSONL "
    "and Parquet per trait, stats.json and a manifest under steering/<build_id>/; only traits whose "
    "gates passed are read.",
)


def decontaminate_scenarios(
    context: AssetExecutionContext,
    settings: BuildConfig,
    eval_prompts: pa.Table,
    source_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
) -> pa.Table:
    """steering_decontamination: the scenarios of the ready steering sources against the
    evaluation prompts."""
    sources = list(settings.active().steering.sources)
    ready, _ = ready_sources(context.instance, sources, source_checks, False, chain=(RAW_SAMPLES,))
    rows = _scenario_rows(settings, ready) if ready else None
    narrow = (
        pa.table(
            {
                "prompt_hash": rows.column("id"),
                "prompt": rows.column("prompt"),
                "source": rows.column("source"),
            }
        )
        if rows is not None
        else pa.table({c: pa.array([], pa.string()) for c in ("prompt_hash", "prompt", "source")})
    )
    table = decontaminate(settings, narrow, eval_prompts, eval_only=False)
    context.add_output_metadata({"scenarios": narrow.num_rows, **decontamination_metadata(table)})
    return table


def _trait_scenarios(
    settings: BuildConfig, ready: list[str], steering_decontamination: pa.Table
) -> pa.Table:
    """The scenarios a trait is answered for: the ready sources' rows, less those too close to
    an evaluation prompt (they never reach the pairs), sampled to the profile's limit."""
    steer = settings.active().steering
    rows = _scenario_rows(settings, ready)
    rows = rows.filter(
        pc.invert(
            pc.is_in(rows.column("id"), value_set=steering_decontamination.column("prompt_hash"))
        )
    )
    return sample_scenarios(
        scenarios(
            rows,
            steer.character_key,
            steer.default_character,
        ),
        steer.limit,
        settings.active().seed,
    )


def steering_card(
    context: AssetExecutionContext,
    settings: BuildConfig,
    kept: dict[str, pa.Table],
    decont: dict,
    trait_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
):
    """The card hook of the steering build (README.md and token_stats.json)."""
    steer = settings.active().steering
    return card_hook(
        context,
        settings,
        recipe="steering",
        title=f"safetygraph steering pairs ({settings.profile})",
        summary="A/B questions per personality trait for contrastive activation addition "
        "(CAA) and steering vectors, in the seed's format and in CAA's, option order balanced.",
        configs={
            f"{fmt}_{trait}": {"train": f"{fmt}/{trait}.jsonl"}
            for fmt in ("seed", "caa")
            for trait in kept
        },
        sources=list(steer.sources),
        rows_by_source=pairs_by_source(kept),
        gate_assets=(EVAL_PROMPTS, STEERING_DECONTAMINATION, STEERING_PAIRS),
        gate_checks=[k for keys in trait_checks.values() for k in keys],
        decontamination=decont,
        generation=config_rows(settings, [steer.config]),
        limitations=STEERING_LIMITATIONS,
    )


def answer_scenarios(
    context: AssetExecutionContext,
    config: SteeringRunConfig,
    settings: BuildConfig,
    llm: LLMResource,
    steering_decontamination: pa.Table,
    source_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
) -> pa.Table:
    """trait_answers: one trait's answers for the sampled scenarios of the ready sources."""
    steer = settings.active().steering
    sources = list(steer.sources)
    if not sources:
        raise Failure(description=f"profile '{settings.profile}' lists no steering.sources")
    ready, statuses = ready_sources(
        context.instance, sources, source_checks, False, chain=(RAW_SAMPLES,)
    )
    table = _trait_scenarios(settings, ready, steering_decontamination)
    book = settings.traits()
    trait = book.trait(context.partition_key)
    (gen,) = settings.generation_configs([steer.config])
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
            "scenarios_decontaminated": steering_decontamination.num_rows,
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


def steering_pairs(
    context: AssetExecutionContext, trait_answers: pa.Table, settings: BuildConfig
) -> pa.Table:
    trait = settings.traits().trait(context.partition_key)
    ratio = float(settings.active().steering.max_length_ratio)
    pairs = build_pairs(trait_answers.cast(ANSWER_SCHEMA), trait, ratio)
    s = summary(pairs)
    context.add_output_metadata(
        {
            "candidates": s.candidates,
            "pairs": s.kept,
            "positive_first_share": MetadataValue.float(s.positive_first_share or 0.0),
            "dropped": counts_table("reason", s.dropped),
        }
    )
    return pairs


def write_steering_files(
    context: AssetExecutionContext,
    config: MergeConfig,
    settings: BuildConfig,
    steering_decontamination: pa.Table,
    trait_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
) -> pa.Table:
    """steering_files: the kept pairs of every trait whose gates passed, written with the card."""
    names = settings.steering_traits()
    ready, statuses = ready_sources(
        context.instance, names, trait_checks, config.allow_partial, chain=STEERING_CHAIN
    )
    storage = settings.storage()
    decont = decontamination_facts(settings, steering_decontamination)
    kept = {}
    stats = {}
    for name, stored in settings.stored_partitions(STEERING_PAIRS, ready).items():
        pairs = read_all(stored)
        kept[name] = kept_pairs(pairs)
        stats[name] = summary(pairs).as_dict()
    if not kept:
        raise Failure(
            description="no trait is ready: materialize steering_pairs for the traits first"
        )
    manifest = write_files(
        storage,
        kept,
        stats,
        settings.export_version or None,
        lambda path: qa_file(
            path,
            profile_thresholds(settings.active().thresholds, settings.active().steering.sources),
        ),
        card=steering_card(context, settings, kept, decont, trait_checks),
        manifest_extra={"decontamination": decont},
        qa_policy=settings.thresholds().files_qa,
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


def build(
    traits: PartitionsDefinition,
    source_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
    trait_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
    generation_op_tags: dict | None = None,
) -> list:
    """The steering assets over the trait partitions; the steps that read sources or traits read
    their blocking checks first (``source_checks``, ``trait_checks``)."""

    @asset(**DECONT_SPEC)
    def steering_decontamination(
        context: AssetExecutionContext, settings: BuildConfig, eval_prompts: pa.Table
    ) -> pa.Table:
        return decontaminate_scenarios(context, settings, eval_prompts, source_checks)

    @asset(partitions_def=traits, op_tags=generation_op_tags or None, **ANSWERS_SPEC)
    def trait_answers(
        context: AssetExecutionContext,
        config: SteeringRunConfig,
        settings: BuildConfig,
        llm: LLMResource,
        steering_decontamination: pa.Table,
    ) -> pa.Table:
        return answer_scenarios(
            context, config, settings, llm, steering_decontamination, source_checks
        )

    @asset(**FILES_SPEC)
    def steering_files(
        context: AssetExecutionContext,
        config: MergeConfig,
        settings: BuildConfig,
        steering_decontamination: pa.Table,
    ) -> pa.Table:
        return write_steering_files(
            context, config, settings, steering_decontamination, trait_checks
        )

    return [
        steering_decontamination,
        trait_answers,
        asset(partitions_def=traits, **PAIRS_SPEC)(steering_pairs),
        steering_files,
    ]
