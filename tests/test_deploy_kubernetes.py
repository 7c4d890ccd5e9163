"""deploy/kubernetes/: every manifest is valid against the Kubernetes schemas (offline, the ones kubernetes-validate
ships), the kustomization lists them all, and they fit together: probes on /healthz and /readyz, a termination grace
that outlasts the drain, the image's non-root uid, selectors that match, settings grok2api reads and a store URL that
names a Service of the base."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from deploy_env import ROOT, environment_names, image_user

from grok2api.config import BootConfig
from grok2api.settings import build, env_overrides

BASE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
DRAIN_SECONDS = 30  # shutdown_grace_seconds' default: how long the gateway drains after SIGTERM
STORE_SCHEMES = {"mysql": ("mysql",), "redis": ("redis", "rediss")}

Manifest = dict[str, Any]


def kustomization() -> Manifest:
    data: Manifest = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return data


def manifests() -> list[Manifest]:
    found: list[Manifest] = []
    for name in kustomization()["resources"]:
        found.extend(doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc)
    return found


def one(kind: str, name: str | None = None) -> Manifest:
    matches = [m for m in manifests() if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def gateway() -> Manifest:
    return one("Deployment", "grok2api")


def gateway_container() -> Manifest:
    containers: list[Manifest] = gateway()["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "grok2api")


def environment() -> dict[str, str]:
    """The gateway's environment: its ConfigMap and Secret together, as envFrom gives them."""
    env: dict[str, str] = {}
    for source in gateway_container()["envFrom"]:
        if "configMapRef" in source:
            env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(one("Secret", source["secretRef"]["name"])["stringData"])
    return env


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    kinds = []
    for manifest in manifests():
        kubernetes_validate.validate(manifest, version, strict=True)  # raises on any unknown or wrong field
        kinds.append(manifest["kind"])
    expected = {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    assert expected <= set(kinds)


def test_a_manifest_with_a_mistake_is_refused() -> None:
    broken = gateway()
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_probes_check_liveness_on_healthz_and_readiness_on_readyz() -> None:
    container = gateway_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert all(probe["port"] in ports for probe in probes.values())
    assert ports[probes["readinessProbe"]["port"]] == int(environment()["GROK2API_PORT"])


def test_termination_grace_outlasts_the_pre_stop_pause_and_the_drain() -> None:
    pod = gateway()["spec"]["template"]["spec"]
    command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(command[1]) + DRAIN_SECONDS + 5


def test_the_pods_run_as_the_images_non_root_user() -> None:
    security = gateway()["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == image_user() != (0, 0)
    container = gateway_container()["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs somewhere to write: the data dir and /tmp are volumes.
    mounts = {m["mountPath"] for m in gateway_container()["volumeMounts"]}
    assert container["readOnlyRootFilesystem"] is True and {environment()["GROK2API_DATA_DIR"], "/tmp"} <= mounts


def test_service_disruption_budget_and_autoscaler_select_the_gateway() -> None:
    deployment = gateway()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one("Service", "grok2api")["spec"]["selector"].items() <= pod_labels.items()
    budget = one("PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    scaler = one("HorizontalPodAutoscaler")["spec"]
    assert (scaler["scaleTargetRef"]["kind"], scaler["scaleTargetRef"]["name"]) == ("Deployment", "grok2api")
    # A voluntary eviction can always proceed: more replicas than the budget keeps.
    assert scaler["minReplicas"] > budget["minAvailable"] and deployment["spec"]["replicas"] > budget["minAvailable"]


def test_the_settings_are_ones_grok2api_reads_and_accepts() -> None:
    env = environment()
    assert {"GROK2API_ADMIN_PASSWORD", "STORAGE_MODE", "DATABASE_URL"} <= env.keys()
    assert set(env) <= environment_names()
    boot = BootConfig.from_env(env)
    assert boot.workers == 1 and boot.admin_password
    build({}, env_overrides(env))  # runtime settings pinned here validate


def test_the_store_url_names_a_service_of_the_base_for_a_shared_store() -> None:
    env = environment()
    url = urlsplit(env["DATABASE_URL"])
    assert env["STORAGE_MODE"] in STORE_SCHEMES, "several replicas need a shared store, not SQLite"
    assert url.scheme in STORE_SCHEMES[env["STORAGE_MODE"]]
    service = one("Service", url.hostname)
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    selector = service["spec"]["selector"].items()
    backends = [m for m in manifests() if m["kind"] in ("StatefulSet", "Deployment")]
    selected = [b for b in backends if selector <= b["spec"]["template"]["metadata"]["labels"].items()]
    assert len(selected) == 1 and selected[0]["metadata"]["name"] != "grok2api"
