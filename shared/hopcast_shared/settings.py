"""Settings for every part of Hopcast, read from the environment and validated at start.

Each setting has a safe local default (the embedded stack); production overrides them
with environment variables. `load()` turns a validation error into one readable message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("scheduler", "content", "billing", "publisher")
HTTP_PORTS: dict[str, int] = {"scheduler": 8081, "content": 8082, "billing": 8083, "publisher": 8084}

DEFAULT_PG_HOST = "127.0.0.1"
DEFAULT_PG_PORT = 55432
DEFAULT_PG_USER = "hopcast"


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names it and says what is expected."""


def state_dir() -> Path:
    """The one ignored folder holding local state (jars, logs, data, keys)."""
    return Path(os.environ.get("HOPCAST_STATE_DIR", ".state")).resolve()


def default_database_url(service: str) -> str:
    return f"postgresql://{DEFAULT_PG_USER}@{DEFAULT_PG_HOST}:{DEFAULT_PG_PORT}/{service}"


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Any bootstrap list works; SASL/TLS through configuration."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    client_id_prefix: str = "hopcast"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # The password from a file (a mounted secret: docker compose, Kubernetes) when
    # KAFKA_SASL_PASSWORD is not set.
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # Topic layout, used when topics are created up front.
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=7)
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=60_000)
    dlq_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=60_000)

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or any(":" not in h for h in hosts):
            raise ValueError("expected host:port[,host:port...]")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _security_complete(self) -> KafkaSettings:
        """A half-configured SASL or TLS fails at start with what is missing, not at the first
        connection with the broker's words."""
        problems = []
        if self.sasl_password is None and self.sasl_password_file is not None:
            try:
                self.sasl_password = SecretStr(self.sasl_password_file.read_text().strip())
            except OSError as exc:
                problems.append(f"KAFKA_SASL_PASSWORD_FILE: cannot read {self.sasl_password_file} ({exc.strerror})")
        if self.security_protocol.startswith("SASL") and (not self.sasl_username or not self.sasl_password):
            problems.append(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            problems.append("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate it belongs to)")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        for name, path in (("CAFILE", self.ssl_cafile), ("CERTFILE", self.ssl_certfile), ("KEYFILE", self.ssl_keyfile)):
            if path is not None and not tls:
                problems.append(
                    f"KAFKA_SSL_{name} is set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} does not use TLS"
                )
            elif path is not None and not path.is_file():
                problems.append(f"KAFKA_SSL_{name}: no file at {path}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class ServiceSettings(BaseSettings):
    """What one service needs: its database, its HTTP port, and the consumer's retry policy.

    Read with `ServiceSettings.for_service("billing")`: `BILLING_DATABASE_URL`,
    `BILLING_HTTP_PORT` and so on, falling back to the local defaults.
    """

    model_config = SettingsConfigDict(extra="ignore")

    name: str
    database_url: str
    # Applies the migrations at start when set (the schema's owner), so that database_url can
    # be a role with no DDL rights (deploy/sql/roles.sql); database_url does both otherwise.
    migrations_database_url: str | None = None
    # False where migrations run as their own step (`hopcast migrate apply SERVICE`, the
    # Kubernetes init container): the service then applies nothing and waits up to
    # schema_wait_s for the schema its code needs.
    migrate_on_start: bool = True
    schema_wait_s: float = Field(default=600.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=1, le=65535)
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    # Consumer retries for transient errors, then the DLQ.
    handler_max_attempts: int = Field(default=5, ge=1, le=100)
    handler_backoff_initial_s: float = Field(default=0.05, gt=0)
    handler_backoff_max_s: float = Field(default=2.0, gt=0)
    # Consumer batches: up to this many ready records share one transaction (1: one each).
    consumer_batch_max: int = Field(default=200, ge=1, le=10_000)
    consumer_batch_timeout_ms: int = Field(default=20, ge=1, le=10_000)
    # Records of different keys (organizations) in a batch are handled in this many lanes at once.
    consumer_lanes: int = Field(default=4, ge=1, le=64)
    # The consumer's read-ahead window: up to this many records (and about this many bytes per
    # fetch) are taken at once and shared round robin between their organizations, so that one
    # organization's backlog of up to this size does not hold up another's event on its
    # partition. Its offsets are committed when it is all handled.
    consumer_window_max_records: int = Field(default=20_000, ge=1, le=1_000_000)
    consumer_window_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024, le=512 * 1024 * 1024)
    # A fetch waits up to `consumer_fetch_max_wait_ms` for `consumer_fetch_min_bytes` to be ready
    # (Kafka's fetch.min.bytes and fetch.max.wait.ms): at a trickle, records then come in a few
    # fetches and rounds, not one each. 1 byte: every record at once, at the most cost per record.
    # At most the window's bytes (a partition's fetch counts no more than that towards it).
    # 100 ms, not 30 or 10: each fetch of a consumer's 24-30 partitions costs it and the broker a
    # request to encode and decode, so fewer fetches leave more of the machine to the runs; a
    # hop at a trickle waits up to that much more (bench/README.md, "The kernel at a trickle").
    consumer_fetch_min_bytes: int = Field(default=65_536, ge=1, le=16 * 1024 * 1024)
    consumer_fetch_max_wait_ms: int = Field(default=100, ge=1, le=10_000)
    # Outbox relay.
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    retention_days: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _window_holds_a_batch(self) -> ServiceSettings:
        if self.consumer_window_max_records < self.consumer_batch_max:
            raise ValueError(
                f"consumer_window_max_records ({self.consumer_window_max_records}) must be at least"
                f" consumer_batch_max ({self.consumer_batch_max})"
            )
        if self.consumer_fetch_min_bytes > self.consumer_window_max_bytes:
            raise ValueError(
                f"consumer_fetch_min_bytes ({self.consumer_fetch_min_bytes}) must be at most"
                f" consumer_window_max_bytes ({self.consumer_window_max_bytes})"
            )
        return self

    @field_validator("database_url", "migrations_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL")
        return value

    @classmethod
    def for_service(cls, name: str) -> ServiceSettings:
        prefix = f"{name.upper()}_"
        values: dict[str, object] = {"name": name}
        for field in cls.model_fields:
            if field == "name":
                continue
            raw = os.environ.get(prefix + field.upper())
            if raw is not None:
                values[field] = raw
        values.setdefault("database_url", default_database_url(name))
        values.setdefault("http_port", HTTP_PORTS.get(name, 8080))
        return load(cls, **values)


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str | None = None
    # PostgreSQL and HTTP client spans (OpenTelemetry's asyncpg and httpx instrumentations):
    # by default on exactly when spans are exported.
    otel_instrument_clients: bool | None = None
    log_level: str = Field(default="INFO", validation_alias="HOPCAST_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="HOPCAST_LOG_FORMAT")


class CryptoSettings(BaseSettings):
    """Token-encryption keys.

    TOKEN_KEYS is `id:base64key[,id:base64key...]` (32-byte keys, ids are positive
    integers; the highest id encrypts, every id decrypts). Locally, when it is unset,
    a key is generated into the state folder; with HOPCAST_ENV=production it is required, and
    a guessable key in it (all-zero, repeated, documented: key_strength) is refused.
    """

    model_config = SettingsConfigDict(extra="ignore")

    token_keys: SecretStr | None = None
    hopcast_env: Literal["local", "test", "production"] = "local"


# What a token may be signed with: asymmetric algorithms only, so a verifier holds no secret
# and a public key can never be taken for an HMAC secret; "none" is never accepted.
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class HttpAuthSettings(BaseSettings):
    """How the services verify the bearer JWT of an HTTP read (HTTP_AUTH_*).

    The signature is checked against HTTP_AUTH_JWKS_URL (an identity provider's key set) or a
    PEM public key (HTTP_AUTH_PUBLIC_KEY, or HTTP_AUTH_PUBLIC_KEY_FILE); issuer, audience and
    expiry are required claims. Outside production, with no key configured, the local
    development key pair in the state folder is used (`hopcast auth dev-token` signs with it);
    with HOPCAST_ENV=production a key source, the issuer and the audience are required.
    """

    model_config = SettingsConfigDict(env_prefix="HTTP_AUTH_", extra="ignore", populate_by_name=True)

    jwks_url: str | None = None
    public_key: str | None = None
    public_key_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    # Comma-separated; each must be asymmetric (ASYMMETRIC_ALGORITHMS).
    algorithms: str = "RS256,ES256,EdDSA"
    # Clock skew allowed on exp, nbf and iat.
    leeway_s: float = Field(default=30.0, ge=0, le=300)
    # How long a fetched key set is kept (a token with an unknown key id refetches it sooner).
    jwks_cache_s: float = Field(default=300.0, gt=0, le=86_400)
    jwks_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # At most one extra fetch per this many seconds for tokens naming a key id the set lacks.
    jwks_refresh_cooldown_s: float = Field(default=30.0, ge=0, le=3600)
    hopcast_env: Literal["local", "test", "production"] = Field(default="local", validation_alias="HOPCAST_ENV")

    @field_validator("jwks_url", "public_key", "issuer", "audience", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        names = [a.strip() for a in value.split(",") if a.strip()]
        refused = [a for a in names if a not in ASYMMETRIC_ALGORITHMS]
        if not names or refused:
            raise ValueError(
                f"expected a comma-separated list of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
                + (f" (refused: {', '.join(refused)})" if refused else "")
            )
        return ",".join(names)

    @model_validator(mode="after")
    def _one_key_source(self) -> HttpAuthSettings:
        problems = []
        sources = [
            n
            for n, v in (
                ("JWKS_URL", self.jwks_url),
                ("PUBLIC_KEY", self.public_key),
                ("PUBLIC_KEY_FILE", self.public_key_file),
            )
            if v is not None
        ]
        if len(sources) > 1:
            problems.append(f"set one of HTTP_AUTH_{', HTTP_AUTH_'.join(sources)}, not several")
        if self.jwks_url is not None:
            https = self.jwks_url.startswith("https://")
            if not https and not self.jwks_url.startswith("http://"):
                problems.append("HTTP_AUTH_JWKS_URL must be an http(s) URL")
            elif not https and self.production:
                problems.append("HTTP_AUTH_JWKS_URL must be https in production")
        if self.public_key_file is not None and not self.public_key_file.is_file():
            problems.append(f"HTTP_AUTH_PUBLIC_KEY_FILE: no file at {self.public_key_file}")
        if self.production:
            if not sources:
                problems.append("HTTP_AUTH_JWKS_URL or HTTP_AUTH_PUBLIC_KEY(_FILE) is required in production")
            if self.issuer is None:
                problems.append("HTTP_AUTH_ISSUER is required in production")
            if self.audience is None:
                problems.append("HTTP_AUTH_AUDIENCE is required in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def production(self) -> bool:
        return self.hopcast_env == "production"

    @property
    def allowed_algorithms(self) -> tuple[str, ...]:
        return tuple(self.algorithms.split(","))


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **values: Any) -> S:
    """Build settings, turning pydantic's error into one clear message per bad setting."""
    try:
        return cls(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or cls.__name__
            lines.append(f"  {where}: {err['msg']}")
        raise SettingsError(f"invalid {cls.__name__} settings:\n" + "\n".join(lines)) from None
