"""Kafka wiring: one place that turns KafkaSettings into aiokafka and FastStream clients.

Producers are idempotent and say acks=all (`PRODUCER_ACKS`: a write is acknowledged once every
in-sync replica has it, at least `min.insync.replicas` of them; aiokafka's own default without
idempotence is acks=1, which a broker lost right after the ack loses); consumers join the group named
after the service, start from the earliest offset and commit only after our own handler
has committed its database transaction (see `subscription.py` and `fair_feed.py`).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from hopcast_shared import kafka_records
from hopcast_shared.settings import KafkaSettings

# Said, not left to the client's defaults: with replication 3 and min.insync.replicas 2 the loss
# of one broker loses no acknowledged event (docs/runbooks/lost-broker.md).
PRODUCER_ACKS = "all"


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile:
        context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None)
    return context


def connection_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client takes: servers, TLS and SASL."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = _ssl_context(kafka)
    if context is not None:
        kwargs["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return kwargs


def make_producer(kafka: KafkaSettings, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): a retried send never writes a duplicate."""
    options: dict[str, Any] = {
        "client_id": f"{kafka.client_id_prefix}-{client_id}",
        "enable_idempotence": True,
        "acks": PRODUCER_ACKS,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "max_request_size": 2 * 1024 * 1024,
        "request_timeout_ms": 30_000,
    }
    options.update(connection_kwargs(kafka))
    options.update(overrides)
    return AIOKafkaProducer(**options)


def _faststream_security(kafka: KafkaSettings) -> BaseSecurity | None:
    context = _ssl_context(kafka)
    if not kafka.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context, use_ssl=True) if context else None
    user = kafka.sasl_username or ""
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    use_ssl = kafka.security_protocol == "SASL_SSL"
    if kafka.sasl_mechanism == "SCRAM-SHA-256":
        return SASLScram256(user, password, ssl_context=context, use_ssl=use_ssl)
    if kafka.sasl_mechanism == "SCRAM-SHA-512":
        return SASLScram512(user, password, ssl_context=context, use_ssl=use_ssl)
    return SASLPlaintext(user, password, ssl_context=context, use_ssl=use_ssl)


async def _raw_records(message: Any) -> Any:
    """A message's body is its raw record(s) (a batched subscriber adds its consumer:
    `subscription._the_message`): the kernel's handlers parse them against the contract
    themselves. FastStream's own decoder would first build a message object and json-decode the
    body of every record of a batch for nothing (half the consumer's throughput in
    bench/faststream_vs_aiokafka.py)."""
    return message.raw_message


async def _parse_whatever_the_headers(message: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's own parser, which decodes every header value strictly as UTF-8: a value
    that is not (or a null one, which Kafka allows) raised there, before any handler, on every
    fetch of the batch. Such records are parsed without their headers; the kernel reads the raw
    records, headers included and untouched, itself (`_raw_records`)."""
    try:
        return await parse(message)
    except (UnicodeDecodeError, AttributeError):
        records = message if isinstance(message, tuple) else (message,)
        bare = tuple(dataclasses.replace(record, headers=[]) for record in records)
        parsed = await parse(bare if isinstance(message, tuple) else bare[0])
        parsed.raw_message = message
        return parsed


def make_broker(kafka: KafkaSettings, service: str, **overrides: Any) -> KafkaBroker:
    """The service's FastStream broker, with an idempotent producer; handlers get the raw records
    (a batched subscriber with its consumer)."""
    options: dict[str, Any] = {
        "client_id": f"{kafka.client_id_prefix}-{service}",
        "enable_idempotence": True,
        "acks": PRODUCER_ACKS,
        "security": _faststream_security(kafka),
        "logger": None,
        "parser": _parse_whatever_the_headers,
        "decoder": _raw_records,
    }
    options.update(overrides)
    # A list, not the comma-separated string: FastStream wraps a string in a list as one host, and
    # aiokafka splits only a string, so "a:9092,b:9092" would be looked up as a single host name.
    return KafkaBroker(kafka.bootstrap_servers.split(","), **options)


# Every consumer of a Hopcast process reads past a header key that is not UTF-8 (see kafka_records).
kafka_records.install()
