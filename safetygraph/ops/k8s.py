"""The Kubernetes deployment, rendered from one place: values for the official Dagster Helm chart,
the vLLM server (Deployment + Service) for the OpenAI-compatible generation path, the NetworkPolicy
that lets only Dagster's pods reach it, the Secret the pods read, and the step pod spec the
k8s_job_executor creates for a GPU asset.

    python -m safetygraph.ops.k8s render k8s/      # writes the manifests (the files in k8s/ are its output)

Everything is plain data (dicts), validated in the tests against the Kubernetes schema
(``kubernetes-validate``, strict). Secret values never appear: pods read them through Secret
references (``envFrom``/``secretKeyRef``), and the Secret manifest is a template with placeholders.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "safetygraph"
SECRET_NAME = "safetygraph-secrets"
SECRET_KEYS = (
    "SAFETYGRAPH_LLM_API_KEY",  # the vLLM server's API key, sent by the openai backend
    "SAFETYGRAPH_ALERT_WEBHOOK_URL",
    "HF_TOKEN",  # gated models and datasets
    "AWS_ACCESS_KEY_ID",  # the s3:// base URI (or use IRSA / workload identity instead)
    "AWS_SECRET_ACCESS_KEY",
)
USER_CODE_LABEL = {"app.kubernetes.io/part-of": "safetygraph"}


@dataclass
class Deployment:
    image: str = "ghcr.io/safetygraph/user-code:0.1.0"
    gpu_image: str = "ghcr.io/safetygraph/user-code-gpu:0.1.0"
    vllm_image: str = "vllm/vllm-openai:v0.33.0"
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    served_model_name: str = "target"
    gpus: int = 1
    gpu_node_selector: dict[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    gpu_tolerations: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    )
    profile: str = "production"
    base_uri: str = "s3://safetygraph-data/builds"
    max_model_len: int = 8192


def _gpu_resources(d: Deployment, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(d.gpus)},
        "limits": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(d.gpus)},
    }


def _env(d: Deployment) -> list[dict[str, Any]]:
    return [
        {"name": "SAFETYGRAPH_PROFILE", "value": d.profile},
        {"name": "SAFETYGRAPH_BASE_URI", "value": d.base_uri},
        {"name": "SAFETYGRAPH_OPENAI_BASE_URL", "value": f"http://vllm.{NAMESPACE}.svc:8000/v1"},
        {"name": "SAFETYGRAPH_EXECUTOR", "value": "k8s"},
        {"name": "DAGSTER_DISABLE_TELEMETRY", "value": "1"},
    ]


def _user_code_values(
    d: Deployment, env: dict, pod_security: dict, container_security: dict
) -> dict[str, Any]:
    """The chart's one user-code deployment: the installed wheel's code location, gRPC on 3030."""
    return {
        "name": "safetygraph",
        "image": {
            "repository": d.image.rsplit(":", 1)[0],
            "tag": d.image.rsplit(":", 1)[1],
            "pullPolicy": "IfNotPresent",
        },
        "dagsterApiGrpcArgs": [
            "--module-name",
            "safetygraph.location.definitions",
            "--working-directory",
            "/app",
        ],
        "port": 3030,
        "env": env,
        "envSecrets": [{"name": SECRET_NAME}],
        "labels": dict(USER_CODE_LABEL),
        "podSecurityContext": pod_security,
        "securityContext": container_security,
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
    }


def helm_values(d: Deployment) -> dict[str, Any]:
    """Values for the official chart (``helm install dagster dagster/dagster -f values.yaml``):
    one user-code deployment running the installed wheel's ``safetygraph.location.definitions`` module, the K8sRunLauncher, the
    daemon (schedules, sensors, backfills), Postgres for the instance."""
    env = {e["name"]: e["value"] for e in _env(d)}
    pod_security = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}
    container_security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "dagsterWebserver": {
            "replicaCount": 1,
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            },
        },
        "dagster-user-deployments": {
            "enabled": True,
            "deployments": [_user_code_values(d, env, pod_security, container_security)],
        },
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {
                "k8sRunLauncher": {
                    "envSecrets": [{"name": SECRET_NAME}],
                    "labels": dict(USER_CODE_LABEL),
                    "runK8sConfig": {
                        "containerConfig": {
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi"},
                                "limits": {"cpu": "2", "memory": "8Gi"},
                            },
                            "securityContext": container_security,
                        },
                        "podSpecConfig": {"securityContext": pod_security},
                    },
                }
            },
        },
        "dagsterDaemon": {
            "enabled": True,
            "runCoordinator": {
                "enabled": True,
                "type": "QueuedRunCoordinator",
                "config": {"queuedRunCoordinator": {"maxConcurrentRuns": 10}},
            },
        },
        "postgresql": {"enabled": True, "postgresqlDatabase": "dagster"},
        "telemetry": {"enabled": False},
    }


def _vllm_container(d: Deployment) -> dict[str, Any]:
    """The vLLM server's container: its arguments, secrets from the Secret, probes, GPUs."""
    return {
        "name": "vllm",
        "image": d.vllm_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--model",
            d.model,
            "--served-model-name",
            d.served_model_name,
            "--tensor-parallel-size",
            str(d.gpus),
            "--max-model-len",
            str(d.max_model_len),
            "--port",
            "8000",
        ],
        "env": [
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "HF_TOKEN"}},
            },
            {
                "name": "VLLM_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": SECRET_NAME, "key": "SAFETYGRAPH_LLM_API_KEY"}
                },
            },
        ],
        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        "resources": _gpu_resources(d, cpu="8", memory="48Gi"),
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 300,
            "periodSeconds": 30,
        },
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "hf-cache", "mountPath": "/root/.cache/huggingface"},
        ],
    }


def vllm_manifests(d: Deployment) -> list[dict[str, Any]]:
    """The OpenAI-compatible vLLM server on a GPU node, and its Service."""
    labels = {"app.kubernetes.io/name": "vllm", **USER_CODE_LABEL}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(d.gpu_node_selector),
                    "tolerations": [dict(t) for t in d.gpu_tolerations],
                    "containers": [_vllm_container(d)],
                    "volumes": [
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
                        {"name": "hf-cache", "emptyDir": {"sizeLimit": "100Gi"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "vllm", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": "vllm"},
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
            "type": "ClusterIP",
        },
    }
    return [deployment, service]


def network_policy() -> dict[str, Any]:
    """Only pods of this deployment (user code, run and step pods carry the label) reach vLLM."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vllm-from-safetygraph-only", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": dict(USER_CODE_LABEL)}}],
                    "ports": [{"protocol": "TCP", "port": 8000}],
                }
            ],
        },
    }


def secret_template() -> dict[str, Any]:
    """The Secret every pod reads (envFrom / secretKeyRef). Placeholders only: create the real one
    with ``kubectl create secret generic safetygraph-secrets --from-literal=...``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {k: "REPLACE_ME" for k in SECRET_KEYS},
    }


def render(out_dir: str | Path, d: Deployment | None = None) -> list[Path]:
    """Write every manifest to ``out_dir``; returns the paths."""
    d = d or Deployment()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `python -m safetygraph.ops.k8s render k8s/`; edit safetygraph/ops/k8s.py instead.\n"
    files = {
        "values.yaml": [helm_values(d)],
        "vllm.yaml": vllm_manifests(d),
        "networkpolicy.yaml": [network_policy()],
        "secret.example.yaml": [secret_template()],
    }
    written = []
    for name, docs in files.items():
        text = header + "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in docs)
        (out / name).write_text(text)
        written.append(out / name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "render":
        sys.exit("usage: python -m safetygraph.ops.k8s render OUT_DIR")
    for p in render(sys.argv[2]):
        print(p)
