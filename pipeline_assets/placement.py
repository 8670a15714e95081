"""Kubernetes placement of GPU steps: ``dagster-k8s/config`` op tags from a profile's settings."""

from typing import Any


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
