"""Settings: local defaults, environment overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hopcast_shared.settings import KafkaSettings, ServiceSettings, SettingsError, load
from hopcast_shared.topics import DLQ_TOPICS, EVENT_TOPICS, topic_specs


def test_local_defaults_point_at_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLING_DATABASE_URL", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    settings = ServiceSettings.for_service("billing")
    assert settings.database_url == "postgresql://hopcast@127.0.0.1:55432/billing"
    assert settings.http_port == 8083
    assert load(KafkaSettings).bootstrap_servers == "127.0.0.1:9092"


def test_environment_overrides_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENT_DATABASE_URL", "postgresql://u:p@db.example:5432/content")
    monkeypatch.setenv("CONTENT_HTTP_PORT", "9999")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "prod.")
    settings = ServiceSettings.for_service("content")
    kafka = load(KafkaSettings)
    assert settings.database_url == "postgresql://u:p@db.example:5432/content"
    assert settings.http_port == 9999
    assert kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert kafka.topic("content.events") == "prod.content.events"


def test_invalid_settings_fail_with_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("SCHEDULER_HTTP_PORT", "70000")
    with pytest.raises(SettingsError) as caught:
        ServiceSettings.for_service("scheduler")
    text = str(caught.value)
    assert "database_url" in text and "postgresql://" in text
    assert "http_port" in text


def test_a_fetch_cannot_wait_for_more_than_its_window_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_CONSUMER_WINDOW_MAX_BYTES", str(1024 * 1024))
    monkeypatch.setenv("BILLING_CONSUMER_FETCH_MIN_BYTES", str(2 * 1024 * 1024))
    with pytest.raises(SettingsError, match="consumer_fetch_min_bytes"):
        ServiceSettings.for_service("billing")
    monkeypatch.setenv("BILLING_CONSUMER_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("BILLING_CONSUMER_FETCH_MAX_WAIT_MS", "0")  # empty fetches without end
    with pytest.raises(SettingsError, match="consumer_fetch_max_wait_ms"):
        ServiceSettings.for_service("billing")


def test_bootstrap_servers_need_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(SettingsError, match="bootstrap_servers"):
        load(KafkaSettings)


def test_every_contract_topic_is_specified_with_explicit_layout() -> None:
    kafka = KafkaSettings(partitions=6, replication_factor=1, topic_prefix="x.")
    specs = {s.name: s for s in topic_specs(kafka)}
    assert set(specs) == {f"x.{t}" for t in (*EVENT_TOPICS, *DLQ_TOPICS)}
    assert set(DLQ_TOPICS) == {"scheduler.dlq", "content.dlq", "billing.dlq", "publisher.dlq"}
    assert all(s.partitions == 6 and s.replication_factor == 1 for s in specs.values())
    assert all("retention.ms" in s.config for s in specs.values())
    assert specs["x.billing.dlq"].config["retention.ms"] == str(kafka.dlq_retention_ms)
    assert all("min.insync.replicas" not in s.config for s in specs.values())


def test_topics_replicated_three_times_take_writes_only_with_two_in_sync() -> None:
    specs = topic_specs(KafkaSettings(partitions=12, replication_factor=3))
    assert {s.config["min.insync.replicas"] for s in specs} == {"2"}


def test_the_sasl_password_may_come_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-billing-password"
    secret.write_text("s3cret-from-a-file\n")
    kafka = load(
        KafkaSettings,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="billing",
        sasl_password_file=secret,
    )
    assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == "s3cret-from-a-file"
    # A value in the environment wins over the file; a missing file is named.
    direct = load(KafkaSettings, sasl_password="direct", sasl_password_file=secret).sasl_password  # noqa: S106
    assert direct is not None and direct.get_secret_value() == "direct"
    with pytest.raises(SettingsError, match="KAFKA_SASL_PASSWORD_FILE: cannot read"):
        load(KafkaSettings, security_protocol="SASL_PLAINTEXT", sasl_username="b", sasl_password_file=tmp_path / "none")
