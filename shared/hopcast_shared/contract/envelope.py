"""The one envelope of every message: CloudEvents 1.0 in structured JSON mode (what Hopcast
writes; binary-mode input is read by `kafka_binding.py`).

`Envelope` holds the CloudEvents attributes and the data as a JSON object; `Envelope.parse`
reads one from a message value; `to_json` writes it with ids as strings and times as UTC RFC
3339 (`...Z`). New events are made in `making.py`.
"""

from __future__ import annotations

import builtins
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import pydantic_core
from pydantic import BaseModel, StringConstraints, ValidationError

from hopcast_shared.contract.errors import ContractError, field_problems
from hopcast_shared.contract.fields import ContractModel, Id, UtcDatetime

CONTENT_TYPE = "application/cloudevents+json"
"""The Kafka `content-type` header of every event message."""
DATA_CONTENT_TYPE: Final = "application/json"
SPEC_VERSION: Final = "1.0"
MAX_EVENT_BYTES = 1_048_576
"""Largest message value accepted (Kafka's default maximum message size)."""

D = TypeVar("D", bound=BaseModel)


class Envelope(ContractModel):
    """A CloudEvents 1.0 event. Extension attributes other than ours are ignored.

    `data` is the type's data as a JSON object; read it as a model with `data_as` (or get
    both at once with `registry.parse_event`).
    """

    specversion: Literal["1.0"]
    id: Id
    """Unique event id; the consumers' inbox key."""
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The producer, e.g. `hopcast/scheduler`, `upstream/webapp`."""
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    """The event type, e.g. `ScheduleDue`; a breaking change makes a new name (`ScheduleDue.v2`)."""
    time: UtcDatetime
    """When the fact happened (UTC)."""
    datacontenttype: Literal["application/json"] = DATA_CONTENT_TYPE
    organizationid: Id
    """The tenant; also the Kafka message key."""
    correlationid: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    """The saga id: the schedule run id from ScheduleDue on."""
    causationid: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    """Id of the event that caused this one."""
    data: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> Envelope:
        """Read an envelope from a message value; raises ContractError (`decode` or `envelope`)."""
        if len(raw) > MAX_EVENT_BYTES:
            raise ContractError("decode", f"message is {len(raw)} bytes, more than {MAX_EVENT_BYTES}")
        # pydantic-core's parser (one pass, in Rust) into Python objects, then the model from
        # them: NaN and Infinity are refused as the JSON they are not, and "not an object" is
        # told apart from "a broken envelope". The contract's models take from Python exactly
        # what they take from JSON (fields.LAX), so this is `model_validate_json` in one pass.
        try:
            document = pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError:
            raise ContractError("decode", "message value is not UTF-8 JSON") from None
        if not isinstance(document, dict):
            raise ContractError("decode", "message value is not a JSON object")
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Envelope:
        """An envelope from its parsed JSON object (structured mode, or a binary-mode message
        put together by `kafka_binding`); raises ContractError (`envelope`)."""
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise ContractError(
                "envelope",
                "CloudEvents envelope invalid",
                event_id=_readable_id(document.get("id")),
                event_type=_readable_type(document.get("type")),
                problems=field_problems(exc),
            ) from None

    def to_json(self) -> bytes:
        """The message value: compact JSON, ids as strings, times as `2027-03-14T07:00:00Z`."""
        return self.model_dump_json(exclude_none=True).encode()

    def data_as(self, model: builtins.type[D]) -> D:
        """The data validated as `model`; raises ContractError (`data`) when it does not fit."""
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            problems = field_problems(exc, prefix="data")
            raise ContractError(
                "data",
                f"data of {self.type} invalid",
                event_id=str(self.id),
                event_type=self.type,
                problems=problems,
            ) from None


def utc_text(time: datetime) -> str:
    """A UTC time as the contract writes it (`2027-03-14T07:00:00.123456Z`)."""
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_event_ids(n: int) -> list[str]:
    """n random (version 4) UUIDs as text, from one read of the system's random source; the
    outbox, the header and the payload each need the text, not a UUID object."""
    raw = bytearray(os.urandom(16 * n))
    ids = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _readable_id(value: object) -> str | None:
    """The id of a broken event, when it is a UUID (anything else is not worth repeating)."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    return None


def _readable_type(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 100 and value.isprintable():
        return value
    return None
