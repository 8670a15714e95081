"""The Kubernetes deployment, verified offline: every manifest rendered and validated against the
Kubernetes schema (kubernetes-validate, strict), the step pod spec the k8s_job_executor would create
for the GPU generation step, the Helm values and the Dockerfile."""

import re
from pathlib import Path

import pytest
import yaml
from safetygraph.location.pipeline_assets.placement import step_pod_job

from safetygraph.ops.k8s import SECRET_KEYS, Deployment, render
from tests.conftest import REPO, demo_sources_copy, write_registry

kv = pytest.importorskip("kubernetes_validate")
K8S_VERSION = "1.33.0"
K8S = REPO / "k8s"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_committed_manifests_are_the_rendered_ones(tmp_path):
    for path in render(tmp_path):
        assert (K8S / path.name).read_text() == path.read_text(), (
            f"k8s/{path.name} is stale: re-render"
        )


@pytest.mark.parametrize("name", ["vllm.yaml", "networkpolicy.yaml", "secret.example.yaml"])
def test_every_manifest_validates_strictly(name):
    docs = _docs(K8S / name)
    assert docs
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)


def test_validation_catches_a_misspelt_field_and_a_wrong_type():
    deployment = _docs(K8S / "vllm.yaml")[0]
    spec = deployment["spec"]["template"]["spec"]
    misspelt = {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {
                **deployment["spec"]["template"],
                "spec": {**spec, "nodeSelecter": spec["nodeSelector"]},
            },
        },
    }
    with pytest.raises(kv.ValidationError, match="nodeSelecter"):
        kv.validate(misspelt, K8S_VERSION, strict=True)
    wrong = yaml.safe_load(yaml.safe_dump(deployment))
    wrong["spec"]["replicas"] = "one"
    with pytest.raises(kv.ValidationError):
        kv.validate(wrong, K8S_VERSION, strict=True)


def test_vllm_runs_on_gpu_nodes_with_secrets_by_reference():
    deployment, service = _docs(K8S / "vllm.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert all("valueFrom" in e for e in container["env"])  # no secret value inline
    assert service["spec"]["ports"][0]["port"] == 8000
    policy = _docs(K8S / "networkpolicy.yaml")[0]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "vllm"}
    assert set(_docs(K8S / "secret.example.yaml")[0]["stringData"]) == set(SECRET_KEYS)


def test_helm_values_wire_the_code_location_run_launcher_and_postgres():
    values = _docs(K8S / "values.yaml")[0]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"][:2] == [
        "--module-name",
        "safetygraph.location.definitions",
    ]
    assert deployment["envSecrets"] == [{"name": "safetygraph-secrets"}]
    assert deployment["env"]["SAFETYGRAPH_EXECUTOR"] == "k8s"
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] and values["dagsterDaemon"]["enabled"]
    text = (K8S / "values.yaml").read_text()
    assert "REPLACE_ME" not in text and not re.search(r"sk-[A-Za-z0-9]{8,}", text)


def test_the_gpu_step_pod_from_the_real_asset_definition_validates(tmp_path):
    from safetygraph.location.resources import BuildConfig

    from safetygraph.location import definitions

    reg, prof = write_registry(tmp_path / "config", demo_sources_copy(tmp_path))
    body = yaml.safe_load(prof.read_text())
    body["profiles"]["test"]["generation"] = {
        "placement": {
            "gpus": 2,
            "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "cpu": "16",
            "memory": "128Gi",
        }
    }
    prof.write_text(yaml.safe_dump(body))
    defs = definitions.build_defs(
        BuildConfig(
            profile="test",
            registry_path=str(reg),
            profiles_path=str(prof),
            base_uri=str(tmp_path / "d"),
        )
    )
    node = defs.resolve_assets_def("generated_responses").node_def
    job = step_pod_job(Deployment(), node.tags)
    kv.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {
        "nvidia.com/gpu": "2",
        "cpu": "16",
        "memory": "128Gi",
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"secretRef": {"name": "safetygraph-secrets"}} in container["envFrom"]
    # the labelling step, with no GPU tags, gets no GPU
    labels = step_pod_job(Deployment(), defs.resolve_assets_def("labels").node_def.tags, "labels")
    kv.validate(labels, K8S_VERSION, strict=True)
    assert "nvidia.com/gpu" not in str(
        labels["spec"]["template"]["spec"]["containers"][0].get("resources")
    )


def test_dockerfile_is_pinned_and_non_root():
    text = (K8S / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
    images = [f for f in re.findall(r"^FROM (\S+)", text, re.M) if f not in stages]
    assert images and all(re.search(r":\d+\.\d+", f) for f in images)  # a version, not latest
    assert re.search(r"^USER 10001$", text, re.M)
    for req in ("requirements.txt", "requirements-gpu.txt"):
        lines = [ln for ln in (K8S / req).read_text().splitlines() if ln and not ln.startswith("#")]
        assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*", ln) for ln in lines), req
    # the runtime installs the wheel built from the checkout, not a copy of the tree (issue 34)
    assert "RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist ." in text
    assert "pip install --no-deps /tmp/dist/safetygraph-*.whl" in text
    assert '"--module-name", "safetygraph.location.definitions"' in text
    assert not re.search(r"^COPY (checks|resources|schemas|config)/", text, re.M)
