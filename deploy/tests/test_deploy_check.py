"""deploy-check catches what it is there to catch: schema errors in compose and Kubernetes
resources, workloads without their hardening, secrets in ConfigMaps, undocumented settings."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# deploy_check imports its sibling modules (manifest_schemas, pinned_tools) as a script would.
sys.path.insert(0, str(ROOT / "deploy"))
_spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "deploy" / "deploy_check.py")
assert _spec is not None and _spec.loader is not None
deploy_check = importlib.util.module_from_spec(_spec)
sys.modules["deploy_check"] = deploy_check
_spec.loader.exec_module(deploy_check)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    report = deploy_check.Report()
    docs = deploy_check.check_overlays(report)
    assert report.problems == []
    return docs


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name))


def test_the_deploy_folder_is_valid() -> None:
    report = deploy_check.Report()
    deploy_check.check_compose(report)
    deploy_check.check_env_file(report)
    deploy_check.check_manifest_files(report)
    assert report.problems == []
    assert len(report.checked) == 3


def test_every_overlay_renders_every_service_hardened(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(rendered) == {"dev", "prod", "dev-keda"}
    for overlay, docs in rendered.items():
        names = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        assert names == {"scheduler", "content", "billing", "publisher"}, overlay
        assert {d["metadata"]["namespace"] for d in docs} == {"hopcast" if overlay == "prod" else "hopcast-dev"}
    # KEDA's ScaledObjects replace the CPU autoscalers, bounded by dev's three partitions.
    keda = rendered["dev-keda"]
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for d in keda)
    scaled = {d["metadata"]["name"]: d["spec"] for d in keda if d["kind"] == "ScaledObject"}
    assert {name: spec["maxReplicaCount"] for name, spec in scaled.items()} == {"content": 3, "publisher": 3}
    assert {spec["triggers"][0]["metadata"]["consumerGroup"] for spec in scaled.values()} == {"content", "publisher"}
    assert any(d["kind"] == "Kafka" for d in rendered["dev"]), "dev uses the Strimzi component"
    assert not any(d["kind"] == "Kafka" for d in rendered["prod"])
    prod_config = _find(rendered["prod"], "ConfigMap", "hopcast-config")["data"]
    assert prod_config["KAFKA_PARTITIONS"] == "12" and prod_config["KAFKA_REPLICATION_FACTOR"] == "3"


def test_a_misspelled_field_is_a_schema_error(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = copy.deepcopy(_find(rendered["prod"], "Deployment", "scheduler"))
    assert deploy_check.schema_errors(deployment) == []
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    deployment["spec"]["replicas"] = "two"
    errors = deploy_check.schema_errors(deployment)
    assert any("readinesProbe" in e for e in errors)
    assert any(e.startswith("spec/replicas") for e in errors)


def test_an_unknown_kind_has_no_schema() -> None:
    errors = deploy_check.schema_errors({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert errors and "no schema" in errors[0]


def test_a_strimzi_kafka_without_listeners_is_refused(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kafka = copy.deepcopy(_find(rendered["dev"], "Kafka", "hopcast-kafka"))
    assert deploy_check.schema_errors(kafka) == []
    del kafka["spec"]["kafka"]["listeners"]
    assert any("listeners" in e for e in deploy_check.schema_errors(kafka))


def test_hardening_problems_are_named(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = copy.deepcopy(rendered["prod"])
    assert deploy_check.hardening_problems(docs) == []
    content = _find(docs, "Deployment", "content")["spec"]["template"]["spec"]
    content["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    content["containers"][0]["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    del content["containers"][0]["resources"]["limits"]
    content["containers"][0]["livenessProbe"]["httpGet"]["path"] = "/ready"
    content["securityContext"]["runAsNonRoot"] = False
    _find(docs, "ConfigMap", "hopcast-config")["data"]["BILLING_DATABASE_URL"] = "postgresql://x"
    docs = [d for d in docs if not (d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "billing")]
    docs = [d for d in docs if not (d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "publisher")]
    problems = "\n".join(deploy_check.hardening_problems(docs))
    for expected in (
        "container content: readOnlyRootFilesystem is not true",
        "container content: capabilities do not drop ALL",
        "container content: no cpu and memory limits",
        "container content: livenessProbe is not GET /health",
        "Deployment/content: pod securityContext.runAsNonRoot is not true",
        "BILLING_DATABASE_URL belongs in a Secret",
        "Deployment/billing has no PodDisruptionBudget",
        "Deployment/publisher has no HorizontalPodAutoscaler",
    ):
        assert expected in problems


def _compose_problems(tmp_path: Path, change: Any) -> list[str]:
    compose = yaml.safe_load(deploy_check.COMPOSE_FILE.read_text())
    change(compose)
    folder = tmp_path / "compose"
    folder.mkdir()
    (folder / "hopcast.env").write_text("")
    path = folder / "compose.yaml"
    path.write_text(yaml.safe_dump(compose))
    report = deploy_check.Report()
    deploy_check.check_compose(report, path)
    return report.problems


def test_compose_schema_and_rules_catch_mistakes(tmp_path: Path) -> None:
    def break_it(compose: dict[str, Any]) -> None:
        compose["services"]["billing"]["healthchek"] = compose["services"]["billing"].pop("healthcheck")
        compose["services"]["content"]["depends_on"].pop("content-db")
        compose["services"]["kafka"]["image"] = "bitnami/kafka:3"
        compose["services"]["publisher"]["restart"] = "no"

    problems = "\n".join(_compose_problems(tmp_path, break_it))
    assert "compose-spec: services/billing" in problems and "healthchek" in problems
    assert "service billing has no healthcheck" in problems
    assert "content must depend on content-db with condition service_healthy" in problems
    assert "official apache/kafka image" in problems
    assert "service publisher has no restart policy" in problems


def test_an_undocumented_setting_is_reported(tmp_path: Path) -> None:
    env = tmp_path / "hopcast.env"
    env.write_text(deploy_check.ENV_FILE.read_text().replace("PUBLISHER_LEASE_S", "PUBLISHER_LEASE"))
    report = deploy_check.Report()
    deploy_check.check_env_file(report, env)
    assert len(report.problems) == 1 and "PUBLISHER_LEASE_S" in report.problems[0]
    assert "<SERVICE>_OUTBOX_BATCH_SIZE" in deploy_check.setting_names()


def test_asyncapi_documents_are_checked_against_the_official_schema() -> None:
    report = deploy_check.Report()
    deploy_check.check_asyncapi(report)
    assert report.problems == []
    document = json.loads((deploy_check.ASYNCAPI_DIR / "billing.json").read_text())
    document["operations"]["sendDeadLetter"]["action"] = "publish"  # AsyncAPI 2 wording
    del document["info"]["version"]
    errors = deploy_check.asyncapi_errors(document)
    assert errors, "an AsyncAPI 2 action and a missing version must not pass"


def test_the_dashboard_only_queries_exported_metrics() -> None:
    dashboard = json.loads(deploy_check.DASHBOARD.read_text())
    assert deploy_check.dashboard_problems(dashboard) == []
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "hopcast_messages_total",
        "hopcast_handler_seconds_bucket",
        "hopcast_outbox_backlog",
        "hopcast_outbox_oldest_age_seconds",
        "hopcast_consumer_lag",
        "hopcast_scheduler_due_backlog",
        "hopcast_scheduler_missed_runs_total",
        "hopcast_billing_credits_debited_total",
        "hopcast_publisher_posts_published_total",
    ):
        assert metric in queries
    dashboard["panels"][1]["targets"][0]["expr"] = "rate(hopcast_mesages_total[5m])"
    assert deploy_check.dashboard_problems(dashboard) == [
        f"panel {dashboard['panels'][1]['title']!r}: hopcast_mesages_total is not a metric the services export"
    ]
