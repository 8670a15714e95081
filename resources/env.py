"""The environment, parsed in one place: the build settings, the LLM resource (its API key only as
an ``EnvVar``) and the executor. Variables: SAFETYGRAPH_PROFILE (demo), SAFETYGRAPH_BASE_URI
(.safetygraph/data in SAFETYGRAPH_HOME or the current folder), SAFETYGRAPH_CONFIG_DIR (the
configuration folder `safetygraph init` writes), SAFETYGRAPH_REGISTRY / _PROFILES / _CONSTITUTION,
SAFETYGRAPH_OPENAI_BASE_URL, SAFETYGRAPH_LLM_MAX_CONCURRENCY / _RPM / _TPM,
SAFETYGRAPH_EXPORT_VERSION, SAFETYGRAPH_EXECUTOR, and the secret SAFETYGRAPH_LLM_API_KEY."""

from __future__ import annotations

import os

from dagster import (
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multi_or_in_process_executor,
    multiprocess_executor,
)
from safetygraph.location.resources.llm import LLMResource
from safetygraph.location.resources.settings import DEFAULT_BASE_URI, BuildConfig

from safetygraph.core.paths import config_file, home
from safetygraph.core.tables import batch_rows_from_env

EXECUTORS = ("in_process", "multiprocess", "multi_or_in_process", "k8s")


def default_settings() -> BuildConfig:
    return BuildConfig(
        profile=os.environ.get("SAFETYGRAPH_PROFILE", "demo"),
        registry_path=os.environ.get("SAFETYGRAPH_REGISTRY", str(config_file("sources.yaml"))),
        profiles_path=os.environ.get("SAFETYGRAPH_PROFILES", str(config_file("profiles.yaml"))),
        constitution_path=os.environ.get(
            "SAFETYGRAPH_CONSTITUTION", str(config_file("constitution.yaml"))
        ),
        traits_path=str(config_file("traits.yaml")),
        profile_set=os.environ.get("SAFETYGRAPH_PROFILE_SET", ""),
        base_uri=os.environ.get("SAFETYGRAPH_BASE_URI", str(home() / DEFAULT_BASE_URI)),
        batch_rows=batch_rows_from_env(),
        export_version=os.environ.get("SAFETYGRAPH_EXPORT_VERSION", ""),
    )


def _number(name: str) -> float | None:
    return float(os.environ[name]) if os.environ.get(name) else None


def default_llm() -> LLMResource:
    """Backends from the environment; the API key only as an EnvVar (Dagster never shows its value)."""
    return LLMResource(
        openai_base_url=os.environ.get("SAFETYGRAPH_OPENAI_BASE_URL"),
        api_key=EnvVar("SAFETYGRAPH_LLM_API_KEY")
        if "SAFETYGRAPH_LLM_API_KEY" in os.environ
        else None,
        max_concurrency=int(os.environ.get("SAFETYGRAPH_LLM_MAX_CONCURRENCY", "16")),
        requests_per_minute=_number("SAFETYGRAPH_LLM_RPM"),
        tokens_per_minute=_number("SAFETYGRAPH_LLM_TPM"),
    )


def executor_from_env() -> ExecutorDefinition:
    """The executor for the environment: SAFETYGRAPH_EXECUTOR if set; else k8s_job_executor in a
    Kubernetes pod (one pod per step, GPU steps on GPU nodes through their op tags) and, elsewhere
    (dagster dev, the CLI), Dagster's multi_or_in_process executor: multiprocess by default, in
    process when a run's config asks for it (``execution: {config: {in_process: {}}}``)."""
    name = os.environ.get("SAFETYGRAPH_EXECUTOR") or (
        "k8s" if os.environ.get("KUBERNETES_SERVICE_HOST") else "multi_or_in_process"
    )
    if name not in EXECUTORS:
        raise ValueError(f"SAFETYGRAPH_EXECUTOR={name!r}: use one of {', '.join(EXECUTORS)}")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return {
        "in_process": in_process_executor,
        "multiprocess": multiprocess_executor,
        "multi_or_in_process": multi_or_in_process_executor,
    }[name]
