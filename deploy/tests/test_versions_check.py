"""deploy-check holds compose's and Strimzi's Kafka and PostgreSQL to the ones the tests run:
an image or a Strimzi version that drifted from the pins is reported, naming both versions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import versions_check as check
import yaml
from deploy_check import Report

COMPOSE = Path(__file__).resolve().parents[1] / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _problems(compose: dict[str, Any], tested: check.Versions | None = None) -> list[str]:
    report = Report()
    check.check_versions(report, compose, tested=tested)
    return report.problems


def test_the_tested_versions_are_read_from_the_pins() -> None:
    tested = check.tested_versions()
    assert tested.kafka.count(".") == 2 and int(tested.kafka.split(".")[0]) >= 4
    assert int(tested.postgres_major) >= 18 and tested.pgvector.startswith("0.")


def test_the_shipped_compose_and_strimzi_run_the_tested_versions(compose: dict[str, Any]) -> None:
    assert _problems(compose) == []


@pytest.mark.parametrize(
    ("service", "image", "complaint"),
    [
        ("kafka", "apache/kafka:4.1.0", "kafka runs apache/kafka:4.1.0, the tests run Kafka"),
        ("kafka-acls", "apache/kafka:4.3.0", "kafka-acls runs apache/kafka:4.3.0"),
        ("content-db", "pgvector/pgvector:0.8.1-pg17", "content-db runs pgvector/pgvector:0.8.1-pg17, the tests run"),
    ],
)
def test_a_drifted_compose_image_is_reported(compose: dict[str, Any], service: str, image: str, complaint: str) -> None:
    drifted = copy.deepcopy(compose)
    drifted["services"][service]["image"] = image
    [problem] = _problems(drifted)
    assert complaint in problem


def test_a_strimzi_kafka_of_another_version_is_reported(compose: dict[str, Any]) -> None:
    tested = check.tested_versions()
    other = check.Versions(kafka="9.9.0", postgres_major=tested.postgres_major, pgvector=tested.pgvector)
    problems = _problems(compose, other)
    assert any("strimzi/kafka.yaml: Kafka" in p and "the tests run 9.9.0" in p for p in problems)
    assert any(p.endswith("kafka runs apache/kafka:" + tested.kafka + ", the tests run Kafka 9.9.0") for p in problems)
