"""Which event types exist, the model of each one's data and the topics it travels on;
and `parse_event`, the one way a consumer turns a message value into an event.

A type has one primary topic (where its producer publishes it and most consumers read
it) and possibly extra topics it is also published to: PostPublished goes to
publisher.events and analytics.events. `topics_for` gives them all, primary first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel

from hopcast_shared import topics
from hopcast_shared.contract import account_health, approvals, deadlines, deferral
from hopcast_shared.contract import events as ev
from hopcast_shared.contract.envelope import Envelope
from hopcast_shared.contract.errors import ContractError, FieldProblem
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.kafka_binding import Headers, binary_document, is_binary


@dataclass(frozen=True)
class EventSpec:
    """One event type of the contract."""

    name: str
    model: type[EventData]
    topic: str
    extra_topics: tuple[str, ...] = ()

    @cached_property
    def topics(self) -> tuple[str, ...]:
        return (self.topic, *self.extra_topics)

    @cached_property
    def names_organization(self) -> bool:
        """Whether the data has an organization_id (which must be the envelope's)."""
        return "organization_id" in self.model.model_fields


_UPSTREAM_MODELS: tuple[type[EventData], ...] = (
    ev.OrganizationCreated,
    ev.OrganizationDeleted,
    ev.OrganizationRestored,
    ev.BrandProfileCreated,
    ev.BrandProfileUpdated,
    ev.BrandProfileDeleted,
    ev.BrandProfileRestored,
    ev.SocialAccountConnected,
    ev.SocialAccountUpdated,
    ev.SocialAccountDeleted,
    ev.SocialAccountRestored,
    ev.BrandAccountLinked,
    ev.BrandAccountUnlinked,
    ev.MaterialSubmitted,
    ev.MaterialArchived,
    ev.PostDeleted,
    ev.PostRestored,
    ev.MaterialDeleted,
    ev.MaterialRestored,
    ev.ScheduleCreated,
    ev.ScheduleUpdated,
    ev.SchedulePaused,
    ev.ScheduleResumed,
    ev.ScheduleDeleted,
    ev.ScheduleTriggerRequested,
    ev.PendingPostApproved,
    ev.PendingPostRejected,
    ev.SubscriptionActivated,
    ev.CreditsGranted,
    ev.EngagementReported,
)

_SPECS: tuple[EventSpec, ...] = (
    *(EventSpec(m.__name__, m, topics.UPSTREAM) for m in _UPSTREAM_MODELS),
    EventSpec("ScheduleDue", ev.ScheduleDue, topics.SCHEDULER),
    EventSpec("RunDeadlinePassed", deadlines.RunDeadlinePassed, topics.SCHEDULER),
    EventSpec("PendingPostCreated", ev.PendingPostCreated, topics.CONTENT),
    EventSpec("ScheduleRunSkipped", ev.ScheduleRunSkipped, topics.CONTENT),
    EventSpec("PendingPostEditAccepted", approvals.PendingPostEditAccepted, topics.CONTENT),
    EventSpec("PendingPostEditRefused", approvals.PendingPostEditRefused, topics.CONTENT),
    EventSpec("CreditsDebited", ev.CreditsDebited, topics.BILLING),
    EventSpec("CreditsDebitRejected", ev.CreditsDebitRejected, topics.BILLING),
    EventSpec("CreditsRefunded", ev.CreditsRefunded, topics.BILLING),
    EventSpec("PostPublished", ev.PostPublished, topics.PUBLISHER, (topics.ANALYTICS,)),
    EventSpec("PostPublishFailed", ev.PostPublishFailed, topics.PUBLISHER),
    EventSpec("PostPublishDeferred", deferral.PostPublishDeferred, topics.PUBLISHER),
    EventSpec("PendingPostExpired", approvals.PendingPostExpired, topics.PUBLISHER),
    EventSpec("SocialAccountTokensRefreshed", account_health.SocialAccountTokensRefreshed, topics.PUBLISHER),
    EventSpec("SocialAccountNeedsReauth", account_health.SocialAccountNeedsReauth, topics.PUBLISHER),
    EventSpec("ScheduleRunCompleted", ev.ScheduleRunCompleted, topics.ANALYTICS),
    EventSpec("EngagementUpdated", ev.EngagementUpdated, topics.ANALYTICS),
    EventSpec("CreditsUsage", ev.CreditsUsage, topics.ANALYTICS),
)

EVENT_TYPES: Mapping[str, EventSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Every event type of the contract by name, in DESIGN.md order."""
_NAME_OF_MODEL: Mapping[type[BaseModel], str] = MappingProxyType({s.model: s.name for s in _SPECS})


def spec_for(type_name: str) -> EventSpec:
    """The spec of an event type; KeyError names the unknown type."""
    try:
        return EVENT_TYPES[type_name]
    except KeyError:
        raise KeyError(f"{type_name!r} is not an event type of the contract") from None


def model_for(type_name: str) -> type[EventData]:
    """The data model of an event type."""
    return spec_for(type_name).model


def topic_for(type_name: str) -> str:
    """The primary topic of an event type (unprefixed)."""
    return spec_for(type_name).topic


def topics_for(type_name: str) -> tuple[str, ...]:
    """Every topic an event type is published to (unprefixed), primary first."""
    return spec_for(type_name).topics


def types_on(topic: str) -> tuple[str, ...]:
    """The event types that travel on a topic (unprefixed name), primary or extra."""
    return tuple(s.name for s in _SPECS if topic in s.topics)


def taken_on(handled: frozenset[str], consumes: Collection[str]) -> dict[str, frozenset[str]]:
    """For each topic read (unprefixed), the types handled when read from it. A type that travels
    on more than one of them (PostPublished: publisher.events and analytics.events, one event id
    on both) is handled from the first in the contract's order, its primary topic; its copy on
    another is ignored like a type the service does not handle, instead of being handled again
    as an inbox duplicate. Every other handled type stays, so one on a topic it does not travel
    on is still refused (`wrong_topic`)."""
    read = set(consumes)
    copies: dict[str, set[str]] = {topic: set() for topic in read}
    for event_type in handled:
        spec = EVENT_TYPES.get(event_type)
        topics = [t for t in spec.topics if t in read] if spec is not None else []
        for topic in topics[1:]:
            copies[topic].add(event_type)
    return {topic: handled - types for topic, types in copies.items()}


def type_name_of(data: BaseModel | type[BaseModel]) -> str:
    """The registered type name of a data model instance (or class); TypeError if it is none."""
    cls = data if isinstance(data, type) else type(data)
    try:
        return _NAME_OF_MODEL[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not an event data model of the contract") from None


_ANY_KEY: Final = object()


def parse_event(
    raw: bytes,
    *,
    headers: Headers | None = None,
    only: Collection[str] | None = None,
    topic: str | None = None,
    key: object = _ANY_KEY,
) -> tuple[Envelope, EventData | None]:
    """Validate a message: the envelope, then its data against the type's model.

    `raw` is the message value; with the message's `headers`, a binary-mode CloudEvent (its
    attributes in `ce_` headers, the value its data: `kafka_binding.py`) is read as well, and
    gets the same answers as the same event in structured mode.

    Returns (envelope, data). With `only` (the types a consumer handles), an event of
    another type, known or not, is returned with data None instead of being validated or
    refused, so a consumer skips what is not its business. With `topic` (unprefixed, the one
    the message was read from), an event of a type that does not travel on it is refused
    (`wrong_topic`): a CreditsDebited or a PostPublishFailed on upstream.events is a forgery,
    not a fact. With `key` (the Kafka record's key, bytes or None), an event whose key is not
    its `organizationid` in its canonical text is refused (`key_mismatch`), whatever its type:
    the key decides the partition and the order, so such a record would be ordered with
    another organization's events. Raises ContractError otherwise; its message names fields
    and problems, never values.
    """
    if headers is not None and is_binary(headers):
        envelope = Envelope.from_document(binary_document(headers, raw))
    else:
        envelope = Envelope.parse(raw)
    if key is not _ANY_KEY and key != str(envelope.organizationid).encode():
        raise ContractError(
            "key_mismatch",
            "the Kafka key is not the event's organizationid",
            event_id=str(envelope.id),
            event_type=envelope.type,
        )
    if only is not None and envelope.type not in only:
        return envelope, None
    spec = EVENT_TYPES.get(envelope.type)
    if spec is None:
        raise ContractError(
            "unknown_type",
            "event type is not in the contract",
            event_id=str(envelope.id),
            event_type=envelope.type,
        )
    if topic is not None and topic not in spec.topics:
        raise ContractError(
            "wrong_topic",
            f"{envelope.type} does not travel on {topic}",
            event_id=str(envelope.id),
            event_type=envelope.type,
        )
    data: EventData = envelope.data_as(spec.model)
    if spec.names_organization and getattr(data, "organization_id", None) not in (None, envelope.organizationid):
        # Tenancy: an event about one organization may not be keyed to another.
        raise ContractError(
            "data",
            f"data of {envelope.type} invalid",
            event_id=str(envelope.id),
            event_type=envelope.type,
            problems=(FieldProblem("data.organization_id", "differs from the envelope's organizationid"),),
        )
    return envelope, data
