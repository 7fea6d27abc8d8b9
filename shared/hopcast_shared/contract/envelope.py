"""The one envelope of every message: CloudEvents 1.0 in structured JSON mode.

`Envelope` holds the CloudEvents attributes and the data as a JSON object; `new_event`
wraps a data model in a fresh envelope; `Envelope.parse` reads one from a message value;
`to_json` writes it with ids as strings and times as UTC RFC 3339 (`...Z`).
"""

from __future__ import annotations

import builtins
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

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
        # The standard parser first: pydantic's would let NaN and Infinity through, which
        # are not JSON, and it cannot tell "not an object" from "a broken envelope".
        try:
            document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ContractError("decode", "message value is not UTF-8 JSON") from None
        if not isinstance(document, dict):
            raise ContractError("decode", "message value is not a JSON object")
        try:
            return cls.model_validate_json(raw)
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
            return model.model_validate_json(json.dumps(self.data, ensure_ascii=False, allow_nan=False))
        except (ValidationError, ValueError) as exc:
            problems = field_problems(exc, prefix="data") if isinstance(exc, ValidationError) else ()
            raise ContractError(
                "data",
                f"data of {self.type} invalid",
                event_id=str(self.id),
                event_type=self.type,
                problems=problems,
            ) from None


def new_event(
    data_model: BaseModel,
    *,
    organization_id: uuid.UUID | str,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    time: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap an event's data in a new envelope: a fresh uuid4 id and the current UTC time
    unless given. The type is the data model's registered name; `time` must be aware."""
    # Imported here: the registry imports this module to parse events.
    from hopcast_shared.contract.registry import type_name_of

    if time is not None and time.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    org = organization_id if isinstance(organization_id, uuid.UUID) else uuid.UUID(organization_id)
    return Envelope(
        specversion=SPEC_VERSION,
        id=event_id or uuid.uuid4(),
        source=source,
        type=type_name_of(data_model),
        time=time or datetime.now(UTC),
        organizationid=org,
        correlationid=correlation_id,
        causationid=causation_id,
        data=data_model.model_dump(mode="json"),
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


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
