"""`hopcast stack ...`: the settings it derives from the environment (unit), and infra-up / status /
infra-down end to end on a state folder and ports of the test's own (integration)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hopcast_shared.settings import SERVICES, SettingsError
from hopcast_stack import procs
from hopcast_stack.cli import app
from hopcast_stack.config import StackSettings
from hopcast_stack.errors import StackError
from hopcast_stack.kafka import KafkaServer
from hopcast_stack.kafka_jars import JAVA_MISSING, java_executable, new_cluster_id

CLEAR = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
    "POSTGRES_PORT",
    "HOPCAST_STATE_DIR",
    *(f"{s.upper()}_DATABASE_URL" for s in SERVICES),
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CLEAR:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_env_prints_the_defaults_as_the_upstream_principal(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    credentials = json.loads((tmp_path / "kafka" / "credentials.json").read_text())
    assert stat.S_IMODE((tmp_path / "kafka" / "credentials.json").stat().st_mode) == 0o600
    assert result.output.splitlines() == [
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092",
        "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME=upstream",
        f"KAFKA_SASL_PASSWORD={credentials['upstream']}",
        "SCHEDULER_DATABASE_URL=postgresql://hopcast@127.0.0.1:55432/scheduler",
        "CONTENT_DATABASE_URL=postgresql://hopcast@127.0.0.1:55432/content",
        "BILLING_DATABASE_URL=postgresql://hopcast@127.0.0.1:55432/billing",
        "PUBLISHER_DATABASE_URL=postgresql://hopcast@127.0.0.1:55432/publisher",
    ]
    # Another role, the same passwords (made once), each principal its own.
    for role in ("dashboard", "admin", "billing"):
        lines = dict(
            line.split("=", 1) for line in CliRunner().invoke(app, ["env", "--role", role]).output.splitlines()
        )
        assert (lines["KAFKA_SASL_USERNAME"], lines["KAFKA_SASL_PASSWORD"]) == (role, credentials[role])
    assert len(set(credentials.values())) == len(credentials)
    refused = CliRunner().invoke(app, ["env", "--role", "mallory"])
    assert refused.exit_code == 1 and "no Kafka principal 'mallory'" in refused.output


def test_env_reflects_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:19092")
    clean_env.setenv("POSTGRES_PORT", "5544")
    clean_env.setenv("BILLING_DATABASE_URL", "postgresql://ledger@db.example:5432/billing")
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert lines["KAFKA_BOOTSTRAP_SERVERS"] == "localhost:19092"
    assert lines["SCHEDULER_DATABASE_URL"] == "postgresql://hopcast@127.0.0.1:5544/scheduler"
    assert lines["BILLING_DATABASE_URL"] == "postgresql://ledger@db.example:5432/billing"
    assert StackSettings().kafka_broker_port == 19092


def test_the_broker_port_follows_a_local_bootstrap_and_ignores_a_remote_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_PORT", "29092")
    assert StackSettings().kafka.bootstrap_servers == "127.0.0.1:29092"
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:39092")
    with pytest.raises(SettingsError, match="disagree"):
        _ = StackSettings().kafka_broker_port
    clean_env.delenv("KAFKA_PORT")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1.example:9092,kafka-2.example:9092")
    assert StackSettings().kafka_external


def test_missing_java_is_one_clear_sentence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.delenv("JAVA_HOME", raising=False)
    clean_env.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError) as caught:
        java_executable()
    assert str(caught.value) == JAVA_MISSING


def test_server_properties_hold_the_single_node_kraft_layout(tmp_path: Path) -> None:
    server = KafkaServer(home=tmp_path / "kafka", port=19092, controller_port=19093)
    server.write_properties()
    lines = server.properties_file.read_text().splitlines()
    props = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    # The cluster id is made once and kept.
    assert server.cluster_id() == server.cluster_id() != new_cluster_id()
    assert len(server.cluster_id()) == 22


@pytest.mark.integration
def test_infra_up_status_and_down_from_the_command_line(tmp_path: Path) -> None:
    """The real command on its own state folder and free ports (jars shared with the main state)."""
    main_libs = StackSettings().state_dir / "kafka" / "libs"
    state = tmp_path / "state"
    (state / "kafka").mkdir(parents=True)
    tmp_path.chmod(0o755)  # the postgres system user must reach its data below here
    if main_libs.is_dir():
        (state / "kafka" / "libs").symlink_to(main_libs)
    kafka_port, controller_port, pg_port = procs.free_ports(3)
    env = {k: v for k, v in os.environ.items() if k not in CLEAR}
    env |= {
        "HOPCAST_STATE_DIR": str(state),
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "POSTGRES_PORT": str(pg_port),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m -XX:TieredStopAtLevel=1",
    }
    hopcast = [str(Path(sys.executable).parent / "hopcast"), "stack"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hopcast, *args], env=env, capture_output=True, text=True, timeout=240)

    try:
        up = run("infra-up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "started kafka" in up.stdout and "started postgres" in up.stdout
        assert all(procs.port_in_use(p) for p in (kafka_port, controller_port, pg_port))

        again = run("infra-up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "running kafka" in again.stdout and "running postgres" in again.stdout

        status = run("status")
        assert status.returncode == 0
        assert f"127.0.0.1:{kafka_port}" in status.stdout and f"127.0.0.1:{pg_port}" in status.stdout
        assert status.stdout.count("running") >= 2

        assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in run("env").stdout
    finally:
        down = run("infra-down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped kafka, postgres" in down.stdout
    assert [p for p in (kafka_port, controller_port, pg_port) if procs.port_in_use(p)] == []
    assert (state / "postgres" / "data" / "PG_VERSION").exists()  # data kept
    assert (state / "kafka" / "data" / "meta.properties").exists()
