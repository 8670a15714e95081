"""GPU placement: the op tags on generated_responses become a pod spec that requests GPUs."""

import json

from dagster import AssetKey
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from safetygraph.location.pipeline_assets.placement import gpu_op_tags
from safetygraph.location.resources import BuildConfig

from safetygraph.location import definitions
from tests.conftest import write_registry

PLACEMENT = {
    "gpus": 2,
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "cpu": "8",
    "memory": "64Gi",
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def _pod_spec(tags: dict) -> dict:
    user = get_user_defined_k8s_config(
        {k: json.dumps(v) if not isinstance(v, str) else v for k, v in tags.items()}
    )
    cfg = DagsterK8sJobConfig(
        job_image="ghcr.io/example/safetygraph:0.1.0",
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
    )
    job = construct_dagster_k8s_job(
        cfg,
        ["dagster", "api", "execute_step"],
        "dagster-step-generated-responses",
        user_defined_k8s_config=user,
    )
    return job.to_dict()["spec"]["template"]["spec"]


def test_gpu_tags_become_requests_limits_node_selector_and_tolerations():
    spec = _pod_spec(gpu_op_tags(PLACEMENT))
    resources = spec["containers"][0]["resources"]
    assert resources["limits"] == {"nvidia.com/gpu": "2", "cpu": "8", "memory": "64Gi"}
    assert resources["requests"]["nvidia.com/gpu"] == "2"
    assert spec["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu_op_tags(None) == {} and gpu_op_tags({"gpus": 0}) == {}


def test_profile_placement_reaches_the_generated_responses_asset(tmp_path):
    entry = {
        "name": "a",
        "kind": "local",
        "location": {"path": "x.jsonl"},
        "format": "jsonl",
        "mapping": {"prompt": "p"},
    }
    reg, prof = write_registry(
        tmp_path,
        [entry],
        profiles={"gpu": {"sources": ["a"], "generation": {"placement": PLACEMENT}}},
    )
    defs = definitions.build_defs(
        BuildConfig(
            profile="gpu", registry_path=str(reg), profiles_path=str(prof), base_uri=str(tmp_path)
        )
    )
    node = defs.resolve_asset_graph().get(AssetKey("generated_responses"))
    tags = node.assets_def.op.tags
    spec = _pod_spec({k: v for k, v in tags.items() if k.startswith("dagster-k8s")})
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    demo = definitions.build_defs(
        BuildConfig(
            profile="test", registry_path=str(reg), profiles_path=str(prof), base_uri=str(tmp_path)
        )
    )
    assert (
        "dagster-k8s/config"
        not in demo.resolve_asset_graph().get(AssetKey("generated_responses")).assets_def.op.tags
    )
