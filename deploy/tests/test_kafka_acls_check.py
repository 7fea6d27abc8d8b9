"""deploy-check holds the Kafka principals of deploy/ to the one table (hopcast_shared.acls): a
KafkaUser granting more or less than its role, a workload connecting as someone else or with
its password outside a Secret, a compose broker or service without authentication, or compose
ACLs that drifted from the table, are each reported."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kafka_acls_check as check
import pytest
import yaml

from hopcast_shared.acls import Acl, acl_table

COMPOSE = Path(__file__).resolve().parents[1] / "compose" / "compose.yaml"


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


@pytest.fixture(scope="module")
def dev() -> list[dict[str, Any]]:
    import deploy_check

    report = deploy_check.Report()
    rendered = deploy_check.check_overlays(report)
    assert report.problems == []
    return rendered["dev"]


def _problems(docs: list[dict[str, Any]]) -> list[str]:
    report = Report()
    check.check_strimzi(report, "dev", docs)
    return report.problems


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_strimzi_users_grant_exactly_the_table(dev: list[dict[str, Any]]) -> None:
    assert _problems(dev) == []
    users = {d["metadata"]["name"]: d for d in dev if d["kind"] == "KafkaUser"}
    assert check.acls_of(users["upstream"]) == {Acl("upstream", "topic", "upstream.events", "write")}
    billing = _named(dev, "Deployment", "billing")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "KAFKA_SASL_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "billing", "key": "password"}},
    } in billing


def test_a_wider_or_narrower_user_and_a_borrowed_identity_are_reported(dev: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(dev)
    upstream = _named(docs, "KafkaUser", "upstream")["spec"]["authorization"]["acls"]
    upstream.append({"resource": {"type": "topic", "name": "billing.events"}, "operations": ["Write"]})
    billing = _named(docs, "KafkaUser", "billing")["spec"]["authorization"]["acls"]
    billing[:] = [rule for rule in billing if rule["resource"].get("name") != "billing.dlq"]
    content = _named(docs, "Deployment", "content")["spec"]["template"]["spec"]["containers"][0]["env"]
    for variable in content:
        if variable["name"] == "KAFKA_SASL_USERNAME":
            variable["value"] = "admin"
        if variable["name"] == "KAFKA_SASL_PASSWORD":
            variable["valueFrom"] = {"configMapKeyRef": {"name": "hopcast-config", "key": "password"}}
    _named(docs, "Kafka", "hopcast-kafka")["spec"]["kafka"]["listeners"][0].pop("authentication")
    problems = "\n".join(_problems(docs))
    assert "KafkaUser upstream grants more than its role: write topic billing.events" in problems
    assert "KafkaUser billing lacks what its role needs: write topic billing.dlq" in problems
    assert "Deployment content: KAFKA_SASL_USERNAME is not content" in problems
    assert "Deployment content: KAFKA_SASL_PASSWORD is not read from the Secret content" in problems
    assert "no scram-sha-512 authentication" in problems


def test_a_plaintext_listener_or_client_is_reported(dev: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(dev)
    _named(docs, "Kafka", "hopcast-kafka")["spec"]["kafka"]["listeners"][0]["tls"] = False
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("hopcast-config"))
    config["data"]["KAFKA_SECURITY_PROTOCOL"] = "SASL_PLAINTEXT"
    problems = "\n".join(_problems(docs))
    assert "Kafka listener tls: not TLS (passwords in the clear)" in problems
    assert "the services reach Kafka over SASL_PLAINTEXT: SASL_SSL (authenticated, over TLS) wanted" in problems
    mounts = _named(dev, "Deployment", "billing")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "kafka-ca", "mountPath": "/etc/hopcast/kafka-ca", "readOnly": True} in mounts


def test_compose_is_held_to_the_table(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    report = Report()
    check.check_compose(report, compose)
    assert report.problems == []

    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["environment"]["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] += ",OPEN:PLAINTEXT"
    broken["services"]["billing"]["environment"]["KAFKA_SASL_PASSWORD"] = "in-the-env"  # noqa: S105
    broken["services"]["content"]["environment"]["KAFKA_SASL_USERNAME"] = "billing"
    drifted = tmp_path / "kafka-acls.args"
    drifted.write_text(
        "\n".join(
            [*check.acl_lines(acl_table()), "--allow-principal User:upstream --operation Write --topic billing.events"]
        )
    )
    report = Report()
    check.check_compose(report, broken, drifted)
    problems = "\n".join(report.problems)
    assert "a listener without authentication" in problems
    assert "billing: KAFKA_SASL_PASSWORD in the environment" in problems
    assert "content: KAFKA_SASL_USERNAME is not content" in problems
    assert "extra write topic billing.events; missing none" in problems
    # The lines round-trip: what kafka-acls.sh would add is the table.
    assert check.parse_acl_lines("\n".join(check.acl_lines(acl_table()))) == set(acl_table())
