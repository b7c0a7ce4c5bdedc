"""Render every kustomize overlay with kubectl and validate every object it produces.

Built-in kinds are validated strictly (unknown fields are errors) by kubernetes-validate against a
pinned Kubernetes version. The CRD kinds (PyTorchJob, PrometheusRule) are validated against the
schemas in k8s/schemas/, whose pod templates resolve to the same pinned Kubernetes definitions, so
a typo inside a training pod is caught as surely as one in a Deployment. A kind with no schema is
a failure, not a warning.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from components.image import PROJECT_IMAGE, PROJECT_IMAGE_GPU

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.32.0"  # the kubectl/kustomize shipped here is 1.32
TARGETS = ["base", "overlays/dev", "overlays/prod-gpu"]
CRD_SCHEMAS = {
    ("kubeflow.org/v1", "PyTorchJob"): "pytorchjob-kubeflow-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
SECRETISH = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL)", re.IGNORECASE)


@cache
def render(target: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render the kustomize overlays (install kubectl >= 1.27)")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {target} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


@cache
def _k8s_definitions() -> referencing.Resource:
    import importlib.resources

    version = f"v{KUBERNETES_VERSION}-local-strict"
    ref = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / version
    return referencing.Resource.from_contents(json.loads((ref / "_definitions.json").read_text()))


def validate_object(obj: dict) -> None:
    """Raise jsonschema.ValidationError (or a failure) when `obj` is not a valid object."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads((K8S / "schemas" / CRD_SCHEMAS[key]).read_text())
        registry = referencing.Registry().with_resource(
            "https://kubernetes.io/api/_definitions.json", _k8s_definitions()
        )
        jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)
        return
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"no schema for {key}: {exc.message}; add one under k8s/schemas/")


def pod_specs(obj: dict) -> list[dict]:
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "PyTorchJob":
        return [r["template"]["spec"] for r in obj["spec"]["pytorchReplicaSpecs"].values()]
    return []


def containers(obj: dict) -> list[dict]:
    return [
        c for s in pod_specs(obj) for c in s.get("containers", []) + s.get("initContainers", [])
    ]


def find(objs, kind: str, name: str) -> dict:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_pinned_kubernetes(target):
    objs = render(target)
    kinds = {o["kind"] for o in objs}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PyTorchJob",
        "PrometheusRule",
    } <= kinds
    for obj in objs:
        try:
            validate_object(obj)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            pytest.fail(
                f"{target}: {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}"
            )


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
                imagePullPolcy="Always"
            ),
            id="typo-in-deployment",
        ),
        pytest.param(
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
                containerPort="grpc"
            ),
            id="wrong-type-in-deployment",
        ),
    ],
)
def test_validation_rejects_broken_builtin_objects(break_it):
    deployment = copy.deepcopy(find(render("base"), "Deployment", "triton"))
    break_it(deployment)
    with pytest.raises(jsonschema.ValidationError):
        validate_object(deployment)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(
            lambda s: s["Worker"]["template"]["spec"]["containers"][0].update(name="trainer"),
            id="no-pytorch-container",
        ),
        pytest.param(
            lambda s: s["Worker"]["template"]["spec"]["containers"][0].update(imagePullPolcy="x"),
            id="typo-inside-pod-template",
        ),
        pytest.param(lambda s: s["Master"].update(replicas=2), id="two-masters"),
        pytest.param(lambda s: s.update(Chief=s["Master"]), id="unknown-replica-type"),
    ],
)
def test_validation_rejects_broken_pytorchjobs(break_it):
    job = copy.deepcopy(find(render("base"), "PyTorchJob", "genline-train"))
    break_it(job["spec"]["pytorchReplicaSpecs"])
    with pytest.raises(jsonschema.ValidationError):
        validate_object(job)


def test_validation_rejects_a_rule_that_is_both_alert_and_record():
    rule = copy.deepcopy(find(render("base"), "PrometheusRule", "genline-serving"))
    rule["spec"]["groups"][0]["rules"][0]["alert"] = "Both"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(rule)


def test_an_unknown_kind_is_a_failure_not_a_warning():
    with pytest.raises(pytest.fail.Exception):
        validate_object(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        )


@pytest.mark.parametrize("target", TARGETS)
def test_triton_serves_grpc_with_explicit_model_control_and_health_probes(target):
    objs = render(target)
    dep = find(objs, "Deployment", "triton")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert "--model-control-mode=explicit" in c["args"]
    model_ready = "/v2/models/genline_generator/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == model_ready
    assert c["startupProbe"]["httpGet"]["path"] == model_ready
    assert f"--load-model={model_ready.split('/')[3]}" in c["args"]
    # model loading (and an S3 download) gets minutes before liveness can restart the pod
    startup = c["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300
    live = c["livenessProbe"]
    assert live["failureThreshold"] * live["periodSeconds"] >= 30
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) <= set(c["resources"]["limits"])
    # The repository-control API is restricted on both protocols.
    assert any(a.startswith("--grpc-restricted-protocol=model-repository") for a in c["args"])
    assert any(a.startswith("--http-restricted-api=model-repository") for a in c["args"])
    svc = find(objs, "Service", "triton")
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("grpc", 8001)]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service",):
        for o in (o for o in objs if o["kind"] == kind):
            assert o["spec"]["selector"].items() <= pod_labels.items()
    pdb = find(objs, "PodDisruptionBudget", "triton")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = find(objs, "HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "triton",
    }
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("target", TARGETS)
def test_triton_shutdown_fits_in_the_grace_period(target):
    spec = find(render(target), "Deployment", "triton")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    (exit_arg,) = [a for a in c["args"] if a.startswith("--exit-timeout-secs=")]
    exit_timeout = int(exit_arg.split("=", 1)[1])
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 1  # the Service stops routing before Triton starts refusing
    # preStop, then in-flight requests for up to the exit timeout, then unload + spool seal
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + exit_timeout + 10


def test_gpu_only_in_prod_gpu_and_model_repository_from_s3_there():
    def gpus(objs):
        return {
            (o["kind"], c["name"]): c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            for o in objs
            for c in containers(o)
        }

    assert not any(gpus(render("overlays/dev")).values())
    prod = gpus(render("overlays/prod-gpu"))
    assert prod[("Deployment", "tritonserver")] == "1" and prod[("PyTorchJob", "pytorch")] == "1"
    dep = find(render("overlays/prod-gpu"), "Deployment", "triton")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_REPOSITORY"]["value"].startswith("s3://")
    assert not any(
        o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "model-repository"
        for o in render("overlays/prod-gpu")
    )
    dev = find(render("overlays/dev"), "Deployment", "triton")
    volumes = {v["name"]: v for v in dev["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-repository"]["persistentVolumeClaim"]["claimName"] == "model-repository"


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_publisher_reaches_the_control_port(target):
    pol = find(render(target), "NetworkPolicy", "triton-ingress")
    assert pol["spec"]["policyTypes"] == ["Ingress"]
    by_port = {r["ports"][0]["port"]: r["from"] for r in pol["spec"]["ingress"]}
    assert set(by_port) == {8000, 8001, 8002}
    for peer in by_port[8000]:
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "publisher"}


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_only_by_reference(target):
    objs = render(target)
    assert not [o for o in objs if o["kind"] == "Secret"], "secrets must be created out of band"
    for obj in objs:
        for c in containers(obj):
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (
                        f"{e['name']} is not a secretKeyRef"
                    )


@pytest.mark.parametrize(
    "target,image",
    [
        ("base", PROJECT_IMAGE),
        ("overlays/dev", PROJECT_IMAGE),
        ("overlays/prod-gpu", PROJECT_IMAGE_GPU),
    ],
)
def test_project_image_matches_the_constant(target, image):
    objs = render(target)
    genline = {c["image"] for o in objs for c in containers(o) if "tritonserver" not in c["image"]}
    assert genline == {image}
    for obj in objs:
        for c in containers(obj):
            assert c.get("image"), f"{obj['kind']}/{c['name']} has no image"


def test_pytorchjob_joins_the_operator_process_group():
    job = find(render("overlays/prod-gpu"), "PyTorchJob", "genline-train")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 3
    for spec in specs.values():
        (c,) = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "pytorch"]
        assert c["command"] == ["python", "-m", "genline.distributed", "--from-env"]


def test_dagster_helm_values_use_k8s_run_launcher_postgres_and_secret_refs():
    values = yaml.safe_load((K8S / "helm" / "dagster-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is True
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["global"]["postgresqlSecretName"]
    (dep,) = values["dagster-user-deployments"]["deployments"]
    assert f"{dep['image']['repository']}:{dep['image']['tag']}" == PROJECT_IMAGE
    assert dep["dagsterApiGrpcArgs"] == ["--module-name", "dagster_project.definitions"]
    text = (K8S / "helm" / "dagster-values.yaml").read_text()
    assert not re.search(r"(?i)(password|secret|token)\s*:\s*['\"]?[A-Za-z0-9+/]{8,}", text)
    # Pod-level fragments are Kubernetes objects too: validate them against the pinned schemas.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "run"},
        "spec": {
            **values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"],
            "containers": [
                {
                    "name": "run",
                    "image": PROJECT_IMAGE,
                    **values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"][
                        "containerConfig"
                    ],
                }
            ],
        },
    }
    validate_object(pod)
