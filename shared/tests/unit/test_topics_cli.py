"""`hopcast topics`: what a deployment's one-shot job runs before the services."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hopcast_shared.listing import print_table
from hopcast_shared.topics_cli import app


def test_list_prints_every_topic_with_its_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("KAFKA_PARTITIONS", "12")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 10
    assert rows[0] == {
        "name": "prod.upstream.events",
        "partitions": 12,
        "replication_factor": 3,
        "config": {"retention.ms": "604800000", "cleanup.policy": "delete", "min.insync.replicas": "2"},
    }
    assert {"name": "prod.billing.dlq", "retention.ms": "2592000000"} in [
        {"name": r["name"], "retention.ms": r["config"]["retention.ms"]} for r in rows
    ]
    table = CliRunner().invoke(app, ["list"]).output
    row = next(line for line in table.splitlines() if "prod.billing.dlq" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["prod.billing.dlq", "12", "3", "2592000000", "2"]


def test_a_piped_table_keeps_each_row_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped (not a terminal), rich would wrap a long cell within 80 columns; grep needs one line."""
    print_table("dead letters", ("id", "error"), [("1", "x" * 300), ("2", "short")])
    lines = capsys.readouterr().out.splitlines()
    assert [line.count("x") for line in lines if "│ 1 " in line] == [300]
    assert sum("│ 2 " in line for line in lines) == 1


def test_create_gives_up_with_one_message_when_kafka_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["create", "--wait", "0"])
    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:1 not usable after 0s" in result.output
