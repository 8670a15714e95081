"""The preference recipe (DPO pairs): preference_pairs per source, the merged train/eval split, and
the TRL files, downstream of every preference gate."""

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
    multi_asset,
)
from pydantic import Field
from safetygraph.location.pipeline_assets.cards import card_hook, config_rows, decontamination_facts
from safetygraph.location.pipeline_assets.decontamination import (
    decontaminate,
    decontamination_metadata,
    eval_only_hashes,
)
from safetygraph.location.pipeline_assets.keys import (
    EVAL_PROMPTS,
    OWNER,
    PREFERENCE_CHAIN,
    PREFERENCE_EVAL,
    PREFERENCE_PAIRS,
    PREFERENCE_TRAIN,
)
from safetygraph.location.pipeline_assets.metadata import counts_table, manifest_files, value_counts
from safetygraph.location.pipeline_assets.source_status import (
    MergeConfig,
    ready_sources,
    status_markdown,
)
from safetygraph.location.resources import BuildConfig, LLMResource
from safetygraph.location.resources.judging import JudgeRunConfig, batch_judge

from safetygraph.core.tables import read_all
from safetygraph.export.qa_file import profile_thresholds, qa_file
from safetygraph.generation import GenerationConfig, RequestCache, format_progress, generate
from safetygraph.recipes.preference.candidates import candidate_pairs
from safetygraph.recipes.preference.dataset import merge_pairs, split_pairs
from safetygraph.recipes.preference.files import PREFERENCE_ROOT, write_files
from safetygraph.recipes.preference.pairs import (
    PAIR_SCHEMA,
    side,
    summary,
)

GROUP = "preference"


class PreferenceRunConfig(JudgeRunConfig):
    """Chosen in the launchpad: the judge that labels both sides, and generation settings."""

    chunk_size: int = Field(default=256, description="Results per durable checkpoint")
    retry_cached_errors: bool = Field(
        default=True,
        description="Send again, on a re-run, the requests whose cached result is an error (off: the "
        "cached error is served, as for a request the API rejects for good)",
    )
    progress_interval_s: float = Field(default=10.0, description="Seconds between progress lines")


PREFERENCE_LIMITATIONS = [
    "Which side is chosen comes from the judge's labels and the generation roles, not from "
    "people; the pairs a gate dropped are counted in stats.json.",
    "Decontamination compares the prompts with the evaluation prompts; answers are not compared.",
    "Sources keep their own licences (table above); a pair's licence is its source's.",
]


def _label_table(label_table: list[dict]) -> MetadataValue:
    rows = "\n".join(f"| {r['chosen']} | {r['rejected']} | {r['pairs']} |" for r in label_table)
    return MetadataValue.md(
        "| chosen (judge) | rejected (judge) | pairs |\n|---|---|---:|\n" + (rows or "| | | 0 |")
    )


PAIRS_SPEC = dict(
    group_name=GROUP,
    kinds={"python", "duckdb", "parquet"},
    owners=[OWNER],
    description="Candidate preference pairs of one source (prompt, chosen, rejected), both sides "
    "judged: recorded pairs (sources with the role 'preference', e.g. hh-rlhf), or the profile's "
    "chosen config (teacher) against its rejected config (direct), or samples paired by the judge. "
    "Every candidate is kept with its drop_reason (null = usable). Empty for sources outside the "
    "profile's preference.sources.",
)

SPLIT_SPEC = dict(
    name="preference_split",
    outs={
        "preference_train": AssetOut(
            group_name=GROUP,
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="The usable pairs of the profile's preference sources, merged (cross-source "
            "duplicates removed), the train side of a split drawn per prompt cluster.",
        ),
        "preference_eval": AssetOut(
            group_name=GROUP,
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="The eval side: no prompt, exact or near duplicate, is also in train.",
        ),
        "preference_decontamination": AssetOut(
            group_name=GROUP,
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="Pairs kept out of training: removed (their prompt is an evaluation "
            "prompt or a copy or near copy of one, with the set, prompt, rule and n-gram or "
            "Jaccard) or eval only (an evaluation set the profile builds from).",
        ),
    },
    deps=[PREFERENCE_PAIRS],
)


def _answerer(
    context: AssetExecutionContext,
    config: PreferenceRunConfig,
    settings: BuildConfig,
    llm: LLMResource,
    judged,
):
    """``answer(prompts, gen)``: the prompts answered by config ``gen`` (through the request
    cache, progress in the run log), then judged."""
    name, cache = context.partition_key, RequestCache(settings.storage())

    def answer(prompts: pa.Table, gen: GenerationConfig) -> pa.Table:
        out, stats = generate(
            prompts,
            [gen],
            llm.backend,
            cache=cache,
            chunk_size=config.chunk_size,
            progress=lambda done, total, elapsed: context.log.info(
                f"{name} [{gen.role}]: {format_progress(done, total, elapsed)}"
            ),
            progress_interval_s=config.progress_interval_s,
            retry_cached_errors=config.retry_cached_errors,
        )
        context.log.info(
            f"{name} [{gen.role}]: {stats.generated}/{stats.requests} answered "
            f"({stats.cache_hits} from cache, {stats.called} called), errors {stats.errors}"
        )
        return judged(out)

    return answer


def preference_pairs(
    context: AssetExecutionContext,
    config: PreferenceRunConfig,
    raw_samples: pa.Table,
    settings: BuildConfig,
    llm: LLMResource,
) -> pa.Table:
    name = context.partition_key
    pref = settings.active().preference
    if name not in pref.sources:
        context.add_output_metadata(
            {"pairs": 0, "note": f"not a preference source of profile '{settings.profile}'"}
        )
        return PAIR_SCHEMA.empty_table()
    judge = batch_judge(config, settings, llm)

    def judged(generated: pa.Table) -> pa.Table:
        return side(
            generated, judge.label(generated.filter(pc.is_valid(generated.column("response"))))
        )

    spec = settings.source(name)
    pairs, how = candidate_pairs(
        raw_samples,
        spec.roles,
        pref,
        judged,
        _answerer(context, config, settings, llm, judged),
        settings.generation_configs,
        infer_categories="category" in spec.mapping,  # the source declares question types
    )
    s = summary(pairs)
    context.add_output_metadata(
        {
            "how": how,
            "candidates": s.candidates,
            "pairs": s.kept,
            "dropped": counts_table("reason", s.dropped),
            "judge_labels": _label_table(s.label_table),
            "benign_chosen_refusals": s.benign_chosen_refusals,
            "by_category": counts_table("category", value_counts(pairs, "category")),
        }
    )
    return pairs


def split_outputs(
    context: AssetExecutionContext,
    config: MergeConfig,
    settings: BuildConfig,
    eval_prompts: pa.Table,
    blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
):
    """preference_split's outputs: the decontamination table, then train and eval (the pairs of
    the sources that are ready: built, unblocked, fresh)."""
    pref = settings.active().preference
    sources = list(pref.sources)
    if not sources:
        raise Failure(description=f"profile '{settings.profile}' lists no preference.sources")
    ready, statuses = ready_sources(
        context.instance,
        sources,
        blocking_checks,
        config.allow_partial,
        chain=PREFERENCE_CHAIN,
    )
    tables = {
        s: read_all(t) for s, t in settings.stored_partitions(PREFERENCE_PAIRS, ready).items()
    }
    merged, stats = merge_pairs(tables, ready)
    decont = decontaminate(settings, merged, eval_prompts)
    removed = decont.filter(pc.equal(decont.column("action"), "removed"))
    merged = merged.filter(
        pc.invert(pc.is_in(merged.column("prompt_hash"), value_set=removed.column("prompt_hash")))
    )
    yield Output(decont, "preference_decontamination", metadata=decontamination_metadata(decont))
    threshold = float(settings.thresholds().near_dup_threshold)
    train, evals = split_pairs(
        merged,
        float(pref.eval_fraction),
        settings.active().seed,
        threshold,
        settings.active().decontamination.eval_only,
        eval_only_hashes(decont),
        settings.near_dup_cache(),
    )
    context.log.info(f"preference pairs: train={train.num_rows} eval={evals.num_rows}")
    for out_name, table in (("preference_train", train), ("preference_eval", evals)):
        yield Output(
            table,
            out_name,
            metadata={
                "rows": table.num_rows,
                "sources": MetadataValue.md(status_markdown(statuses)),
                "cross_source_duplicates_removed": stats.cross_source_duplicates_removed,
                "by_source": counts_table("source", value_counts(table, "source")),
                "by_category": counts_table("category", value_counts(table, "category")),
            },
        )


def preference_card(
    context: AssetExecutionContext,
    settings: BuildConfig,
    preference_train: pa.Table,
    preference_eval: pa.Table,
    decont: dict,
    fmt: str,
):
    """The card hook of the preference build (README.md and token_stats.json)."""
    pref = settings.active().preference
    return card_hook(
        context,
        settings,
        recipe="preference",
        title=f"safetygraph DPO safety pairs ({settings.profile})",
        summary=f"Preference pairs in TRL's {fmt} format (prompt, chosen, rejected) for "
        "DPO safety tuning, both sides judged; split per prompt cluster.",
        configs={"default": {"train": "train.jsonl", "eval": "eval.jsonl"}},
        sources=list(pref.sources),
        rows_by_source={
            k: value_counts(preference_train, "source").get(k, 0)
            + value_counts(preference_eval, "source").get(k, 0)
            for k in pref.sources
        },
        gate_assets=(EVAL_PROMPTS, PREFERENCE_TRAIN, PREFERENCE_EVAL),
        decontamination=decont,
        generation=config_rows(settings, [pref.chosen, pref.rejected, pref.sampler]),
        limitations=PREFERENCE_LIMITATIONS,
    )


@asset(
    group_name=GROUP,
    kinds={"json", "parquet"},
    owners=[OWNER],
    description="The DPO files in TRL's format (preference.format: standard or conversational): "
    "train and eval as JSONL and Parquet, stats.json and a manifest under preference/<build_id>/; "
    "written only when every preference gate upstream passed.",
)
def preference_files(
    context: AssetExecutionContext,
    preference_train: pa.Table,
    preference_eval: pa.Table,
    preference_decontamination: pa.Table,
    settings: BuildConfig,
) -> pa.Table:
    pref = settings.active().preference
    decont = decontamination_facts(settings, preference_decontamination)
    fmt = str(pref.format)
    s_train, s_eval = summary(preference_train), summary(preference_eval)
    stats = {
        "train": s_train.kept,
        "eval": s_eval.kept,
        "label_table_train": s_train.label_table,
        "benign_chosen_refusals_train": s_train.benign_chosen_refusals,
        "benign_prompts_train": s_train.benign_prompts,
    }
    manifest = write_files(
        settings.storage(),
        preference_train,
        preference_eval,
        fmt,
        pref.training_system_prompt,
        stats,
        settings.export_version or None,
        lambda path: qa_file(path, profile_thresholds(settings.active().thresholds, pref.sources)),
        card=preference_card(context, settings, preference_train, preference_eval, decont, fmt),
        manifest_extra={"decontamination": decont},
        qa_policy=settings.thresholds().files_qa,
        upstream=settings.upstream_ids(pref.sources),
    )
    storage = settings.storage()
    files_md, files_table = manifest_files(manifest)
    context.add_output_metadata(
        {
            "build_id": manifest["build_id"],
            "format": fmt,
            "path": MetadataValue.path(storage.uri(PREFERENCE_ROOT, manifest["build_id"])),
            "files": files_md,
        }
    )
    return files_table


def build(
    partitions: PartitionsDefinition, blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]]
) -> list:
    """preference_pairs over the registry's partitions; the split reads each source's blocking
    checks (``blocking_checks``) before it reads the pairs."""

    @multi_asset(**SPLIT_SPEC)
    def preference_split(
        context: AssetExecutionContext,
        config: MergeConfig,
        settings: BuildConfig,
        eval_prompts: pa.Table,
    ):
        yield from split_outputs(context, config, settings, eval_prompts, blocking_checks)

    return [
        asset(partitions_def=partitions, **PAIRS_SPEC)(preference_pairs),
        preference_split,
        preference_files,
    ]
