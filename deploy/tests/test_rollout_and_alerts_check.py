"""deploy-check's scaling rules (no replica count where an autoscaler owns the scale, no
maxReplicas above the partitions) and its alerts check (promtool's own rule tests, metrics
the services export, a runbook per alert, the PrometheusRule equal to alerts.yaml)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import alerts_check
import pytest
import yaml
from deploy_check import Report, exported_metrics
from manifests import check_generated
from rollout_check import job_problems, migration_step_problems, scaling_problems, topic_prefix_problems


def _docs(*, replicas: int | None = None, max_replicas: int = 6, partitions: str = "12") -> list[dict[str, Any]]:
    deployment: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": "content"}, "spec": {}}
    if replicas is not None:
        deployment["spec"]["replicas"] = replicas
    return [
        deployment,
        {"kind": "ConfigMap", "metadata": {"name": "hopcast-config-5fk2"}, "data": {"KAFKA_PARTITIONS": partitions}},
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "content"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "content"}, "maxReplicas": max_replicas},
        },
    ]


def test_an_autoscaled_deployment_without_replicas_within_the_partitions_passes() -> None:
    assert scaling_problems(_docs(max_replicas=12)) == []


def test_a_replica_count_beside_an_autoscaler_is_refused() -> None:
    [problem] = scaling_problems(_docs(replicas=3))
    assert "Deployment/content sets spec.replicas while HorizontalPodAutoscaler/content owns its scale" in problem


def test_max_replicas_above_the_partitions_is_refused() -> None:
    [problem] = scaling_problems(_docs(max_replicas=40, partitions="12"))
    assert "HorizontalPodAutoscaler/content: at most 40 replicas, above the 12 partitions" in problem


def test_a_keda_scaler_is_held_to_the_same_rules() -> None:
    docs = _docs(max_replicas=6, partitions="3")[:2]  # no HPA: KEDA's
    docs.append(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "content"},
            "spec": {"scaleTargetRef": {"name": "content"}, "maxReplicaCount": 6},
        }
    )
    [problem] = scaling_problems(docs)
    assert "ScaledObject/content: at most 6 replicas, above the 3 partitions" in problem


def _service(*, init: bool = True, migrate_on_start: str = "false", owner_in_main: bool = False) -> dict[str, Any]:
    main: dict[str, Any] = {
        "name": "billing",
        "env": [{"name": "BILLING_MIGRATE_ON_START", "value": migrate_on_start}],
        "envFrom": [{"secretRef": {"name": "billing-secrets"}}],
    }
    if owner_in_main:
        main["envFrom"].append({"secretRef": {"name": "billing-migrations"}})
    pod: dict[str, Any] = {"containers": [main]}
    if init:
        pod["initContainers"] = [{"name": "migrate", "command": ["hopcast", "migrate", "apply", "billing"]}]
    return {"kind": "Deployment", "metadata": {"name": "billing"}, "spec": {"template": {"spec": pod}}}


def test_migrations_in_their_init_container_pass() -> None:
    assert migration_step_problems([_service()], ["billing"]) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"init": False}, "no init container runs `hopcast migrate apply billing`"),
        ({"migrate_on_start": "true"}, "container billing: migrates at start"),
        ({"owner_in_main": True}, "container billing: reads the schema owner's URL"),
    ],
)
def test_migrations_in_the_serving_process_are_refused(change: dict[str, Any], complaint: str) -> None:
    [problem] = migration_step_problems([_service(**change)], ["billing"])
    assert complaint in problem


def test_a_job_kept_after_it_finished_is_refused() -> None:
    kept = {"kind": "Job", "metadata": {"name": "hopcast-topics"}, "spec": {"ttlSecondsAfterFinished": 86400}}
    [problem] = job_problems([kept])
    assert "Job/hopcast-topics: ttlSecondsAfterFinished is not 0" in problem
    assert job_problems([{**kept, "spec": {"ttlSecondsAfterFinished": 0}}]) == []


def test_a_topic_prefix_beside_the_strimzi_topics_is_refused() -> None:
    topic = {"kind": "KafkaTopic", "metadata": {"name": "upstream.events"}}
    config = {"kind": "ConfigMap", "metadata": {"name": "hopcast-config-x"}, "data": {"KAFKA_TOPIC_PREFIX": "prod."}}
    [problem] = topic_prefix_problems([topic, config])
    assert "KAFKA_TOPIC_PREFIX is set, but the KafkaTopics have no prefix" in problem
    assert topic_prefix_problems([config]) == []  # a Job makes prefixed topics itself


def test_the_strimzi_topics_do_not_depend_on_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka_topics import kafka_topics

    monkeypatch.setenv("KAFKA_RETENTION_MS", "60000")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "shell.")
    assert {t["spec"]["config"]["retention.ms"] for t in kafka_topics()} == {"604800000", "2592000000"}
    assert not any(t["spec"]["topicName"].startswith("shell.") for t in kafka_topics())


def test_the_strimzi_topics_are_the_contracts() -> None:
    from kafka_topics import kafka_topics

    from hopcast_shared.topics import DLQ_TOPICS, EVENT_TOPICS

    topics = kafka_topics()
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted([*EVENT_TOPICS, *DLQ_TOPICS])
    assert all(t["spec"]["replicas"] == 3 and t["spec"]["config"]["min.insync.replicas"] == "2" for t in topics)


@pytest.fixture
def alerts_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alerts.yaml and its tests in a folder of their own, where the check reads them."""
    for source in (alerts_check.ALERTS, alerts_check.ALERT_TESTS):
        shutil.copy(source, tmp_path / source.name)
    monkeypatch.setattr(alerts_check, "ALERTS", tmp_path / alerts_check.ALERTS.name)
    monkeypatch.setattr(alerts_check, "ALERT_TESTS", tmp_path / alerts_check.ALERT_TESTS.name)
    return tmp_path / alerts_check.ALERTS.name


def _check() -> list[str]:
    report = Report()
    alerts_check.check_alerts(report, exported_metrics())
    return report.problems


def _edit(path: Path, change: Any) -> None:
    alerts = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(alerts["groups"][0]["rules"][0])
    path.write_text(yaml.safe_dump(alerts, sort_keys=False), encoding="utf-8")


def test_the_shipped_alerts_pass_promtool_and_every_other_check() -> None:
    assert _check() == []


def test_a_rule_that_breaks_its_unit_test_fails(alerts_copy: Path) -> None:
    _edit(alerts_copy, lambda rule: rule.update(expr=rule["expr"].replace("> 1000", "> 100000")))
    problems = _check()
    assert any("promtool test rules" in p and "HopcastConsumerLagHigh" in p for p in problems), problems


def test_an_unknown_metric_and_a_missing_runbook_are_reported(alerts_copy: Path) -> None:
    def change(rule: dict[str, Any]) -> None:
        rule["expr"] = "hopcast_no_such_metric > 0"
        rule["annotations"]["runbook"] = "docs/runbooks/nowhere.md"

    _edit(alerts_copy, change)
    problems = _check()
    assert any("hopcast_no_such_metric is not a metric the services export" in p for p in problems)
    assert any("HopcastConsumerLagHigh: its runbook 'docs/runbooks/nowhere.md'" in p for p in problems)


def test_the_prometheus_rule_must_equal_the_alerts(alerts_copy: Path) -> None:
    _edit(alerts_copy, lambda rule: rule.update(labels={"severity": "page"}))
    report = Report()
    check_generated(report)
    assert any("prometheusrule.yaml: differs from its source" in p for p in report.problems)
    rule = alerts_check.prometheus_rule(yaml.safe_load(alerts_copy.read_text(encoding="utf-8")))
    assert rule["spec"]["groups"][0]["rules"][0]["labels"] == {"severity": "page"}
    assert copy.deepcopy(rule)["kind"] == "PrometheusRule"
