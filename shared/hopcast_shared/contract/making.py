"""Making a new event: `event_json` writes the message value of a data model in a fresh
envelope, the one serializer every producer uses (through the outbox's `event_rows`);
`new_event` is the same event read back as an `Envelope` model, for upstream tools and tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pydantic_core
from pydantic import BaseModel

from hopcast_shared.contract.envelope import Envelope, utc_text
from hopcast_shared.contract.registry import type_name_of


def event_json(
    data: BaseModel,
    *,
    event_id: uuid.UUID | str,
    organization_id: uuid.UUID | str,
    source: str,
    correlation_id: str | None,
    causation_id: str | None,
    time: datetime | str,
) -> bytes:
    """The message value of a new event, without building an envelope model: the data was
    validated when its model was built and is serialized once by pydantic; ids and the time
    (or its text, `utc_text`) need no escaping, the other texts are written as JSON strings.
    `Envelope.parse(...).to_json()` gives these bytes back (a unit test holds them equal);
    `organization_id` must be a UUID (or its text)."""
    when = time if isinstance(time, str) else utc_text(time)
    head = (
        f'{{"specversion":"1.0","id":"{event_id}","source":{_json_text(source)},"type":"{type_name_of(data)}",'
        f'"time":"{when}","datacontenttype":"application/json","organizationid":"{organization_id}"'
    )
    if correlation_id is not None:
        head += f',"correlationid":{_json_text(correlation_id)}'
    if causation_id is not None:
        head += f',"causationid":{_json_text(causation_id)}'
    return (head + ',"data":').encode() + data.__pydantic_serializer__.to_json(data) + b"}"


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
    """A new event as an envelope model: a fresh uuid4 id and the current UTC time unless given
    (`time` must be aware); what `event_json` writes, read back."""
    if time is not None and time.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    org = organization_id if isinstance(organization_id, uuid.UUID) else uuid.UUID(organization_id)
    raw = event_json(
        data_model,
        event_id=event_id or uuid.uuid4(),
        organization_id=org,
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        time=time or datetime.now(UTC),
    )
    return Envelope.parse(raw)


def _json_text(text: str) -> str:
    return pydantic_core.to_json(text).decode()
