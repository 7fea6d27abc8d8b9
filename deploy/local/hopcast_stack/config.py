"""Settings of the local stack alone (ports, heap, timeouts, the state folder), from the environment.

Connection settings the services share (KAFKA_BOOTSTRAP_SERVERS, <NAME>_DATABASE_URL) stay in
hopcast_shared.settings; this class derives the broker's port from the bootstrap address when
that address is local, so one variable moves both the broker and its clients.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hopcast_shared.settings import (
    DEFAULT_PG_HOST,
    DEFAULT_PG_PORT,
    DEFAULT_PG_USER,
    HTTP_PORTS,
    KafkaSettings,
    SettingsError,
    load,
    state_dir,
)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_CONTROLLER_PORT = 9093


class StackSettings(BaseSettings):
    """Every knob of the local stack; each environment variable is named in its alias."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    state_dir: Path = Field(default_factory=state_dir, validation_alias="HOPCAST_STATE_DIR")
    # None: the port of a local KAFKA_BOOTSTRAP_SERVERS, else 9092.
    kafka_port: int | None = Field(default=None, ge=1, le=65535, validation_alias="KAFKA_PORT")
    kafka_controller_port: int = Field(
        default=DEFAULT_KAFKA_CONTROLLER_PORT, ge=1, le=65535, validation_alias="KAFKA_CONTROLLER_PORT"
    )
    # The scripts' default is 1 GB; a local broker with a handful of topics is happy in 512 MB.
    kafka_heap_opts: str = Field(default="-Xms256m -Xmx512m", validation_alias="KAFKA_HEAP_OPTS")
    kafka_ready_timeout_s: float = Field(default=60.0, gt=0, validation_alias="KAFKA_READY_TIMEOUT_S")
    # 1: one broker (the default); 3: a three-node KRaft cluster (kafka_cluster.py), topics
    # replicated 3 times with min.insync.replicas 2, for trying the loss of a broker.
    kafka_brokers: int = Field(default=1, validation_alias="HOPCAST_KAFKA_BROKERS")
    # Three JVMs share the machine: each gets less than the single broker.
    kafka_cluster_heap_opts: str = Field(default="-Xms128m -Xmx384m", validation_alias="KAFKA_CLUSTER_HEAP_OPTS")
    postgres_port: int = Field(default=DEFAULT_PG_PORT, ge=1, le=65535, validation_alias="POSTGRES_PORT")
    postgres_user: str = Field(default=DEFAULT_PG_USER, validation_alias="POSTGRES_USER")
    # PostgreSQL refuses to run as root: as root, initdb and the server run as this system user.
    postgres_system_user: str = Field(default="hopcast-pg", validation_alias="POSTGRES_SYSTEM_USER")
    postgres_ready_timeout_s: float = Field(default=30.0, gt=0, validation_alias="POSTGRES_READY_TIMEOUT_S")
    service_ready_timeout_s: float = Field(default=60.0, gt=0, validation_alias="HOPCAST_SERVICE_READY_TIMEOUT_S")

    @field_validator("kafka_brokers")
    @classmethod
    def _one_or_three(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("HOPCAST_KAFKA_BROKERS is 1 (one broker) or 3 (a three-node cluster)")
        return value

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def kafka(self) -> KafkaSettings:
        """The clients' view (KAFKA_* variables), with the bootstrap pointing at the local broker
        unless KAFKA_BOOTSTRAP_SERVERS was set explicitly."""
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            return load(KafkaSettings)
        return load(KafkaSettings, bootstrap_servers=f"127.0.0.1:{self.kafka_broker_port}")

    @property
    def kafka_external(self) -> bool:
        """KAFKA_BOOTSTRAP_SERVERS names another machine (or several brokers): we do not run that one."""
        explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not explicit:
            return False
        hosts = [h.strip() for h in explicit.split(",") if h.strip()]
        return len(hosts) != 1 or hosts[0].rsplit(":", 1)[0] not in LOCAL_HOSTS

    @property
    def kafka_broker_port(self) -> int:
        explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        from_bootstrap: int | None = None
        if explicit and not self.kafka_external:
            try:
                from_bootstrap = int(explicit.strip().rsplit(":", 1)[1])
            except (IndexError, ValueError):
                raise SettingsError(f"KAFKA_BOOTSTRAP_SERVERS={explicit!r}: expected host:port") from None
        if from_bootstrap is not None and self.kafka_port is not None and from_bootstrap != self.kafka_port:
            raise SettingsError(
                f"KAFKA_PORT={self.kafka_port} and KAFKA_BOOTSTRAP_SERVERS={explicit} disagree: set one of them"
            )
        return from_bootstrap or self.kafka_port or DEFAULT_KAFKA_PORT

    def database_url(self, service: str) -> str:
        """<SERVICE>_DATABASE_URL when set, else the service's database on the local server."""
        return os.environ.get(f"{service.upper()}_DATABASE_URL") or local_database_url(
            self.postgres_user, self.postgres_port, service
        )

    def http_port(self, service: str) -> int:
        raw = os.environ.get(f"{service.upper()}_HTTP_PORT")
        return int(raw) if raw else HTTP_PORTS.get(service, 8080)


def local_database_url(user: str, port: int, database: str) -> str:
    return f"postgresql://{user}@{DEFAULT_PG_HOST}:{port}/{database}"


def load_settings() -> StackSettings:
    return load(StackSettings)
