"""AsyncAPI 3.0 documents, one per service, generated from the code: the contract registry
(event types, their data models and topics) and each service's `ServiceInterface` (the
topics it consumes, the types it handles, the types it emits).

Why not FastStream's generator: the services subscribe with one raw handler per topic (the
kernel's consumer validates and dispatches by CloudEvents type) and publish through the
outbox relay with aiokafka, so FastStream sees untyped subscribers and no publishers; its
document would list channels without messages. The contract registry knows the messages.

`render_asyncapi()` gives the files; `export_asyncapi(folder)` writes them (docs/asyncapi/
holds the checked-in copy, kept in sync by a test).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hopcast_shared.contract.envelope import CONTENT_TYPE, Envelope
from hopcast_shared.contract.registry import EVENT_TYPES, taken_on, types_on
from hopcast_shared.dlq import DeadLetter
from hopcast_shared.settings import HTTP_PORTS
from hopcast_shared.topics import dlq_topic

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class ServiceInterface:
    """What one service exchanges over Kafka (unprefixed topic names, contract type names)."""

    name: str
    summary: str
    consumes: tuple[str, ...]
    handles: tuple[str, ...]
    emits: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [t for t in (*self.handles, *self.emits) if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"{self.name}: not event types of the contract: {', '.join(unknown)}")
        unread = [t for t in self.handles if not any(topic in self.consumes for topic in EVENT_TYPES[t].topics)]
        if unread:
            raise ValueError(f"{self.name} handles {', '.join(unread)} but consumes none of their topics")


def installed_interfaces() -> list[ServiceInterface]:
    """The interfaces of the installed services (`hopcast.services` entry points), by name."""
    found = []
    for ep in entry_points(group="hopcast.services"):
        module = import_module(f"{ep.value}.interface")
        found.append(module.INTERFACE)
    return sorted(found, key=lambda i: i.name)


def _channel_id(topic: str) -> str:
    head, *rest = re.split(r"[^A-Za-z0-9]+", topic)
    return head + "".join(part.capitalize() for part in rest)


def _hoist(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Move a pydantic schema's $defs into components/schemas (refs already point there)."""
    for name, definition in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name}")
    return schema


def _model_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    return _hoist(model.model_json_schema(ref_template=_REF), schemas)


def _headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Kafka record headers: CloudEvents structured mode, so no ce_ header (consumers also"
            " read binary mode, where the attributes are ce_ headers and the value is the data)"
        ),
        "properties": {
            "content-type": {"const": CONTENT_TYPE},
            "traceparent": {"type": "string", "description": "W3C trace context: one run is one trace"},
            "tracestate": {"type": "string"},
        },
    }


def _message(type_name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    spec = EVENT_TYPES[type_name]
    schemas[type_name] = _model_schema(spec.model, schemas)
    return {
        "name": type_name,
        "title": type_name,
        "summary": (spec.model.__doc__ or type_name).strip().splitlines()[0],
        "contentType": CONTENT_TYPE,
        "headers": _headers(),
        "payload": {
            "allOf": [
                {"$ref": _REF.format(model="Envelope")},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": type_name},
                        "data": {"$ref": _REF.format(model=type_name)},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "format": "uuid", "description": "The organization id"},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _dead_letter_message(schemas: dict[str, Any]) -> dict[str, Any]:
    schemas["DeadLetter"] = _model_schema(DeadLetter, schemas)
    return {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "summary": "An event the consumer could not handle, with the reason and the original",
        "contentType": "application/json",
        "payload": {"$ref": _REF.format(model="DeadLetter")},
    }


def _channel(topic: str, description: str, message_names: Iterable[str]) -> dict[str, Any]:
    return {
        "address": topic,
        "description": description + " Every topic name takes KAFKA_TOPIC_PREFIX in front.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in message_names},
        "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
    }


def _operation(action: str, topic: str, names: Sequence[str], summary: str, group: str | None) -> dict[str, Any]:
    channel = _channel_id(topic)
    operation: dict[str, Any] = {
        "action": action,
        "summary": summary,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names],
    }
    if group is not None:
        operation["bindings"] = {"kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": "0.5.0"}}
    return operation


def render_document(interface: ServiceInterface) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service."""
    schemas: dict[str, Any] = {}
    schemas["Envelope"] = _model_schema(Envelope, schemas)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    taken = taken_on(frozenset(interface.handles), interface.consumes)
    for topic in _topics(interface):
        on_topic = types_on(topic)
        handled = [t for t in on_topic if t in taken[topic]] if topic in interface.consumes else []
        sent = [t for t in interface.emits if topic in EVENT_TYPES[t].topics]
        shown = [t for t in on_topic if t in handled or t in sent]
        for name in shown:
            messages.setdefault(name, _message(name, schemas))
        channels[_channel_id(topic)] = _channel(topic, f"Events of type {', '.join(on_topic)}.", shown)
        suffix = _channel_id(topic)[0].upper() + _channel_id(topic)[1:]
        if handled:
            operations[f"receive{suffix}"] = _operation(
                "receive",
                topic,
                handled,
                f"{interface.name} handles these (other types on the topic are skipped); "
                "an event that breaks the contract or keeps failing goes to the dead-letter topic",
                interface.name,
            )
        if sent:
            operations[f"send{suffix}"] = _operation(
                "send", topic, sent, f"{interface.name} publishes these through its transactional outbox", None
            )
    dlq = dlq_topic(interface.name)
    messages["DeadLetter"] = _dead_letter_message(schemas)
    channels[_channel_id(dlq)] = _channel(
        dlq, f"Events {interface.name} could not handle (`hopcast dlq list {interface.name}`).", ["DeadLetter"]
    )
    operations["sendDeadLetter"] = _operation(
        "send", dlq, ["DeadLetter"], "An event that broke the contract or kept failing, for replay after a fix", None
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": f"urn:hopcast:{interface.name}",
        "info": {
            "title": f"Hopcast {interface.name}",
            "version": DOCUMENT_VERSION,
            "description": (
                f"{interface.summary}\n\nEvery message value is a CloudEvents 1.0 event in structured JSON, "
                "keyed by organization id. Delivery is effectively once: the outbox publishes what a "
                "transaction committed; the consumer's inbox ignores redeliveries. Generated from the code "
                "by `hopcast contract export-asyncapi`; the contract is DESIGN.md."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "Any Kafka: KAFKA_BOOTSTRAP_SERVERS (TLS and SASL through KAFKA_* settings)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
        "x-hopcast-http": {
            "port": HTTP_PORTS.get(interface.name),
            "paths": ["/health", "/ready", "/metrics"],
        },
    }


def _topics(interface: ServiceInterface) -> list[str]:
    seen: list[str] = []
    for topic in (*interface.consumes, *(t for name in interface.emits for t in EVENT_TYPES[name].topics)):
        if topic not in seen:
            seen.append(topic)
    return seen


def render_asyncapi(interfaces: Sequence[ServiceInterface] | None = None) -> dict[str, str]:
    """Every document by file name (`<service>.json`), as deterministic text."""
    chosen = installed_interfaces() if interfaces is None else interfaces
    return {f"{i.name}.json": json.dumps(render_document(i), indent=2, ensure_ascii=False) + "\n" for i in chosen}


def export_asyncapi(directory: Path, interfaces: Sequence[ServiceInterface] | None = None) -> list[Path]:
    """Write the documents into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_asyncapi(interfaces).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
