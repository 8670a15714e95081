"""Kubernetes placement of GPU steps: ``dagster-k8s/config`` op tags from a profile's settings, and
the Job that dagster_k8s builds from them (the Dagster side of ``safetygraph/ops/k8s.py``)."""

from collections.abc import Mapping
from typing import Any

from safetygraph.ops.k8s import SECRET_NAME, USER_CODE_LABEL, Deployment


def gpu_op_tags(placement: dict[str, Any] | None) -> dict[str, Any]:
    """Op tags that make the k8s executor/run launcher request GPUs on a GPU node for this step.

    ``placement``: {gpus: N (the tensor-parallel size), node_selector: {...}, tolerations: [...],
    cpu: "8", memory: "64Gi"}. No GPUs: no tags (the step runs wherever the executor puts it).
    """
    if not placement or not int(placement.get("gpus", 0)):
        return {}
    gpus = str(int(placement["gpus"]))
    requests = {"nvidia.com/gpu": gpus}
    limits = {"nvidia.com/gpu": gpus}
    for key in ("cpu", "memory"):
        if placement.get(key):
            requests[key] = str(placement[key])
            limits[key] = str(placement[key])
    tolerations = placement.get("tolerations") or [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    return {
        "dagster-k8s/config": {
            "container_config": {"resources": {"requests": requests, "limits": limits}},
            "pod_spec_config": {
                "node_selector": dict(placement.get("node_selector") or {}),
                "tolerations": list(tolerations),
            },
        }
    }


def step_pod_job(
    d: Deployment, op_tags: Mapping[str, Any], step_key: str = "generated_responses"
) -> dict[str, Any]:
    """The Job (with its pod spec) that k8s_job_executor creates for a step with these op tags:
    built by dagster_k8s itself (``construct_dagster_k8s_job``), returned as plain data."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    job_config = DagsterK8sJobConfig(
        job_image=d.gpu_image,
        dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent",
        instance_config_map="dagster-instance",
        postgres_password_secret="dagster-postgresql-secret",
        env_secrets=[SECRET_NAME],
        labels=dict(USER_CODE_LABEL),
    )
    job = construct_dagster_k8s_job(
        job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key.replace('_', '-')}",
        # how the executor reads a step's tags (a definition's tags hold the config as JSON)
        user_defined_k8s_config=get_user_defined_k8s_config(op_tags),
        component="step_worker",
        labels={"dagster/step": step_key},
    )
    return ApiClient().sanitize_for_serialization(job)
