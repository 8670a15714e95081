"""The safetygraph code location: every artifact of a safety-dataset build as an asset with lineage.

``dagster dev`` in the repo root loads ``defs`` (pyproject's [tool.dagster]): one Definitions per
domain (the per-source chain, the refusal recipe, the circuit breaker, preference, steering), each
with its assets, checks and jobs, merged with the sensors, schedules, resources and executor they
share. Settings come from the environment, parsed in ``resources/env.py`` (SAFETYGRAPH_PROFILE,
SAFETYGRAPH_BASE_URI, ...; the secrets SAFETYGRAPH_LLM_API_KEY and SAFETYGRAPH_ALERT_WEBHOOK_URL only
as EnvVars); SAFETYGRAPH_EXECUTOR picks the executor (by default k8s_job_executor inside a
Kubernetes pod, multiprocess elsewhere).
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    ExecutorDefinition,
    StaticPartitionsDefinition,
    define_asset_job,
)
from safetygraph.location.checks import blocking_check_keys, per_source_checks
from safetygraph.location.checks import circuit_breaker as checks_circuit_breaker
from safetygraph.location.checks import datasets as checks_datasets
from safetygraph.location.checks import efficacy as checks_efficacy
from safetygraph.location.checks import export as checks_export
from safetygraph.location.checks import labeling as checks_labeling
from safetygraph.location.checks import preference as checks_preference
from safetygraph.location.checks.factories import files_qa_check
from safetygraph.location.checks.steering import per_trait as steering_checks
from safetygraph.location.pipeline_assets import (
    audit,
    circuit_breaker,
    datasets,
    decontamination,
    efficacy,
    export,
    generation,
    labeling,
    preference,
    sources,
    steering,
)
from safetygraph.location.pipeline_assets.keys import (
    DATASET_DECONTAMINATION,
    EVAL_PROMPTS,
    EXPORT,
    JUDGE_QUALITY,
    PREFERENCE_CHAIN,
    PREFERENCE_PAIRS,
    RAW_QUARANTINE,
    RAW_SAMPLES,
    REFUSAL_DATASET,
    REFUSAL_EVAL,
    REFUSAL_TRAIN,
    SOURCE_CHAIN,
    STEERING_CHAIN,
    STEERING_DECONTAMINATION,
    STEERING_FILES,
)
from safetygraph.location.pipeline_assets.placement import gpu_op_tags
from safetygraph.location.resources import BuildConfig, LLMResource, ParquetIOManager
from safetygraph.location.resources.env import default_llm, default_settings, executor_from_env
from safetygraph.location.sensors import (
    build_check_alert_sensor,
    build_file_sensor,
    build_schedules,
    dead_run_reaper,
    run_failure_alerts,
)
from safetygraph.location.sensors.alerts import AlertResource, default_alerts

from safetygraph.recipes.steering.files import STEERING_ROOT

SOURCE_JOB = "source_pipeline"
DATASET_JOB = "dataset_pipeline"
REFUSAL_JOB = "refusal_pipeline"
CIRCUIT_BREAKER_JOB = "circuit_breaker_pipeline"
PREFERENCE_SOURCE_JOB = "preference_source_pipeline"
PREFERENCE_JOB = "preference_pipeline"
INGEST_JOB = "ingest_pipeline"
STEERING_TRAIT_JOB = "steering_trait_pipeline"
STEERING_JOB = "steering_pipeline"
STEERING_DECONT_JOB = "steering_decontamination_pipeline"
EFFICACY_JOB = "efficacy_pipeline"


def source_defs(partitions, source_checks: list, gpu_tags: dict) -> Definitions:
    """Per source (one partition each): ingest, generation, labels and the audit, with their gates;
    the judge's measured quality."""
    chain = AssetSelection.assets(*SOURCE_CHAIN, RAW_QUARANTINE)
    return Definitions(
        assets=[
            *sources.build(partitions),
            *generation.build(partitions, gpu_tags),
            *labeling.build(partitions),
            *audit.build(partitions),
        ],
        asset_checks=source_checks,
        jobs=[
            define_asset_job(
                SOURCE_JOB,
                selection=chain,
                partitions_def=partitions,
                description="One source through ingestion, generation, labels and audit (one run per partition).",
            ),
            define_asset_job(
                INGEST_JOB,
                selection=AssetSelection.assets(RAW_SAMPLES, RAW_QUARANTINE),
                partitions_def=partitions,
                description="Ingest one source (raw_samples and its quarantine), e.g. a steering source's scenarios.",
            ),
        ],
    )


# the merge writes the refusal dataset and its decontamination table (one op), from the
# evaluation sets' prompts
MERGE = AssetSelection.assets(JUDGE_QUALITY, REFUSAL_DATASET, DATASET_DECONTAMINATION, EVAL_PROMPTS)


def refusal_defs(source_blocking: dict) -> Definitions:
    """The merge of the profile's sources, the refusal recipe's split, review sample, QA and export;
    the dataset job runs every recipe on the merge (refusal and circuit breaker)."""
    per_source = AssetSelection.assets(*SOURCE_CHAIN, RAW_QUARANTINE)
    preference_all = AssetSelection.groups("preference") | AssetSelection.assets(
        RAW_SAMPLES, RAW_QUARANTINE
    )
    return Definitions(
        assets=[decontamination.eval_prompts, *datasets.build(source_blocking), *export.ASSETS],
        asset_checks=[
            *checks_labeling.dataset(),
            *checks_datasets.dataset(),
            *checks_export.dataset(),
        ],
        jobs=[
            define_asset_job(
                DATASET_JOB,
                selection=AssetSelection.all()
                - per_source
                - preference_all
                - AssetSelection.groups("steering")
                - AssetSelection.groups("efficacy"),
                description="Merge the profile's sources, then every recipe on the merge: the refusal "
                "export and the circuit-breaker files, each gated only by its own checks.",
            ),
            define_asset_job(
                REFUSAL_JOB,
                selection=MERGE
                | AssetSelection.assets(
                    REFUSAL_TRAIN, REFUSAL_EVAL, "review_sample", "qa_report", EXPORT
                ),
                description="The refusal recipe: merge, its own split, review sample, QA and export.",
            ),
        ],
    )


def circuit_breaker_defs() -> Definitions:
    """Stage 2 of the circuit breaker: shards, merge gates, validation, split and files."""
    return Definitions(
        assets=circuit_breaker.ASSETS,
        asset_checks=checks_circuit_breaker.dataset(),
        jobs=[
            define_asset_job(
                CIRCUIT_BREAKER_JOB,
                selection=MERGE | AssetSelection.groups("circuit_breaker"),
                description="The circuit-breaker recipe: merge, shards, merge gates, split and stage-2 files.",
            )
        ],
    )


def preference_defs(partitions, source_blocking: dict, pair_checks: list) -> Definitions:
    """DPO pairs: candidate pairs per source, the merged split and the TRL files."""
    sources_sel = AssetSelection.assets(RAW_SAMPLES, RAW_QUARANTINE, PREFERENCE_PAIRS)
    recipe = AssetSelection.groups("preference") - sources_sel
    return Definitions(
        assets=preference.build(partitions, source_blocking),
        asset_checks=[*pair_checks, *checks_preference.dataset()],
        jobs=[
            define_asset_job(
                PREFERENCE_SOURCE_JOB,
                selection=sources_sel,
                partitions_def=partitions,
                description="One preference source: ingest, then its candidate pairs, both sides judged.",
            ),
            define_asset_job(
                PREFERENCE_JOB,
                selection=recipe | AssetSelection.assets(EVAL_PROMPTS),
                description="Merge the preference sources' pairs, split them and write the TRL files.",
            ),
        ],
    )


def steering_defs(traits, source_blocking: dict, trait_checks: list, gpu_tags: dict) -> Definitions:
    """CAA pairs, one partition per trait, and the steering files."""
    per_trait = AssetSelection.assets(*STEERING_CHAIN)
    decont = AssetSelection.assets(EVAL_PROMPTS, STEERING_DECONTAMINATION)
    return Definitions(
        assets=steering.build(
            traits,
            source_blocking,
            blocking_check_keys(trait_checks, STEERING_CHAIN),
            gpu_tags,
        ),
        asset_checks=[*trait_checks, files_qa_check(STEERING_FILES, STEERING_ROOT)],
        jobs=[
            define_asset_job(
                STEERING_TRAIT_JOB,
                selection=per_trait,
                partitions_def=traits,
                description="One trait: its answers for every scenario and its A/B steering pairs (backfill several traits).",
            ),
            define_asset_job(
                STEERING_DECONT_JOB,
                selection=decont,
                description="The evaluation sets and the steering scenarios too close to them (run "
                "after ingesting the steering sources, before the traits).",
            ),
            define_asset_job(
                STEERING_JOB,
                selection=AssetSelection.groups("steering") - per_trait - decont,
                description="Write the steering files of the profile's traits.",
            ),
        ],
    )


def efficacy_defs(gpu_tags: dict) -> Definitions:
    """Does each recipe's dataset move a real model: one efficacy asset per recipe, after its files."""
    return Definitions(
        assets=efficacy.build(gpu_tags),
        asset_checks=checks_efficacy.dataset(),
        jobs=[
            define_asset_job(
                EFFICACY_JOB,
                selection=AssetSelection.groups("efficacy"),
                description="Train or steer the profile's efficacy model on each recipe's latest "
                "files and measure the effect on held-out rows (safetygraph build runs the "
                "recipes it wrote).",
            )
        ],
    )


def build_defs(
    settings: BuildConfig | None = None,
    llm: LLMResource | None = None,
    alerts: AlertResource | None = None,
    executor: ExecutorDefinition | None = None,
) -> Definitions:
    """The Definitions for one registry (one partition per registry source): one Definitions per
    domain, merged with the sensors, schedules, resources and executor they share."""
    settings = settings or default_settings()
    partitions = StaticPartitionsDefinition(settings.registry().names)
    traits = StaticPartitionsDefinition(settings.traits().names)
    source_checks = per_source_checks(partitions)
    pair_checks = checks_preference.per_source(partitions)
    trait_checks = steering_checks(traits)
    gpu_tags = gpu_op_tags(settings.active().placement)
    domains = [
        source_defs(partitions, source_checks, gpu_tags),
        refusal_defs(blocking_check_keys(source_checks, SOURCE_CHAIN)),
        circuit_breaker_defs(),
        preference_defs(
            partitions,
            blocking_check_keys([*source_checks, *pair_checks], PREFERENCE_CHAIN),
            pair_checks,
        ),
        steering_defs(
            traits, blocking_check_keys(source_checks, (RAW_SAMPLES,)), trait_checks, gpu_tags
        ),
        efficacy_defs(gpu_tags),
    ]
    check_keys = [spec.key for d in domains for c in d.asset_checks for spec in c.check_specs]
    platform = Definitions(
        sensors=[
            build_check_alert_sensor(check_keys),
            run_failure_alerts,
            dead_run_reaper,
            build_file_sensor(SOURCE_JOB),
        ],
        schedules=build_schedules(DATASET_JOB),
        resources={
            "settings": settings,
            "llm": llm or default_llm(),
            "alerts": alerts or default_alerts(),
            "io_manager": ParquetIOManager(
                base_uri=settings.base_uri, batch_rows=settings.batch_rows
            ),
        },
        executor=executor or executor_from_env(),
    )
    return Definitions.merge(*domains, platform)


defs = build_defs()
