"""The event contract's envelope and registry: CloudEvents structured JSON written and read,
every way a message can be broken reported as a ContractError of its kind without echoing the
input, and the registry of types and topics matching DESIGN.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from hopcast_shared import topics
from hopcast_shared.contract import (
    CONTENT_TYPE,
    EVENT_TYPES,
    ContractError,
    Envelope,
    EventData,
    PostPublished,
    account_health,
    approvals,
    deadlines,
    deferral,
    model_for,
    new_event,
    parse_event,
    topic_for,
    topics_for,
    type_name_of,
    types_on,
)
from hopcast_shared.contract import events as ev
from hopcast_shared.contract.examples import (
    EXAMPLES,
    ORGANIZATION_ID,
    example_data,
    example_event,
    example_model,
)

# DESIGN.md "Topics", written out again on purpose: the registry must match the document.
EXPECTED_TOPICS: dict[str, tuple[str, ...]] = {
    **{
        name: (topics.UPSTREAM,)
        for name in [
            "OrganizationCreated",
            "OrganizationDeleted",
            "OrganizationRestored",
            "BrandProfileCreated",
            "BrandProfileUpdated",
            "BrandProfileDeleted",
            "BrandProfileRestored",
            "SocialAccountConnected",
            "SocialAccountUpdated",
            "SocialAccountDeleted",
            "SocialAccountRestored",
            "BrandAccountLinked",
            "BrandAccountUnlinked",
            "MaterialSubmitted",
            "MaterialArchived",
            "PostDeleted",
            "PostRestored",
            "MaterialDeleted",
            "MaterialRestored",
            "ScheduleCreated",
            "ScheduleUpdated",
            "SchedulePaused",
            "ScheduleResumed",
            "ScheduleDeleted",
            "ScheduleTriggerRequested",
            "PendingPostApproved",
            "PendingPostRejected",
            "SubscriptionActivated",
            "CreditsGranted",
            "EngagementReported",
        ]
    },
    "ScheduleDue": (topics.SCHEDULER,),
    "RunDeadlinePassed": (topics.SCHEDULER,),
    "PendingPostCreated": (topics.CONTENT,),
    "ScheduleRunSkipped": (topics.CONTENT,),
    "PendingPostEditAccepted": (topics.CONTENT,),
    "PendingPostEditRefused": (topics.CONTENT,),
    "CreditsDebited": (topics.BILLING,),
    "CreditsDebitRejected": (topics.BILLING,),
    "CreditsRefunded": (topics.BILLING,),
    "PostPublished": (topics.PUBLISHER, topics.ANALYTICS),
    "PostPublishFailed": (topics.PUBLISHER,),
    "PostPublishDeferred": (topics.PUBLISHER,),
    "PendingPostExpired": (topics.PUBLISHER,),
    "SocialAccountTokensRefreshed": (topics.PUBLISHER,),
    "SocialAccountNeedsReauth": (topics.PUBLISHER,),
    "ScheduleRunCompleted": (topics.ANALYTICS,),
    "EngagementUpdated": (topics.ANALYTICS,),
    "CreditsUsage": (topics.ANALYTICS,),
}


def test_to_json_writes_cloudevents_structured_json() -> None:
    run = uuid.uuid4()
    event = new_event(
        example_model("ScheduleDue"),
        organization_id=ORGANIZATION_ID,
        source="hopcast/scheduler",
        correlation_id=str(run),
        time=datetime(2027, 3, 14, 3, 0, tzinfo=timezone(timedelta(hours=-4))),
    )
    document = json.loads(event.to_json())
    assert document["specversion"] == "1.0"
    assert document["type"] == "ScheduleDue"
    assert document["time"] == "2027-03-14T07:00:00Z"
    assert document["datacontenttype"] == "application/json"
    assert document["organizationid"] == ORGANIZATION_ID
    assert document["correlationid"] == str(run)
    assert "causationid" not in document  # optional attributes are left out, not null
    assert uuid.UUID(document["id"]).version == 4
    assert document["data"]["due_at"] == "2027-03-14T07:00:00Z"
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_new_event_defaults_and_checks() -> None:
    before = datetime.now(UTC)
    first = new_event(example_model("ScheduleDue"), organization_id=uuid.UUID(ORGANIZATION_ID), source="x")
    second = new_event(example_model("ScheduleDue"), organization_id=ORGANIZATION_ID, source="x")
    assert first.id != second.id
    assert before <= first.time <= datetime.now(UTC)
    assert first.time.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        new_event(
            example_model("ScheduleDue"),
            organization_id=ORGANIZATION_ID,
            source="x",
            time=datetime(2027, 1, 1),
        )
    with pytest.raises(ContractError, match="source"):
        new_event(example_model("ScheduleDue"), organization_id=ORGANIZATION_ID, source="")

    class NotAnEvent(BaseModel):
        x: int = 1

    with pytest.raises(TypeError, match="NotAnEvent"):
        new_event(NotAnEvent(), organization_id=ORGANIZATION_ID, source="x")


def test_envelope_parse_accepts_extensions_and_reads_data_as_model() -> None:
    document = json.loads(example_event("CreditsGranted").to_json())
    document["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = Envelope.parse(json.dumps(document).encode())
    assert envelope.type == "CreditsGranted"
    assert envelope.data_as(ev.CreditsGranted).amount == 50


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": "not-a-uuid"}, "id"),
        ({"id": None}, "id"),
        ({"organizationid": 42}, "organizationid"),
        ({"source": ""}, "source"),
        ({"type": ""}, "type"),
        ({"time": "2027-03-14T07:00:00"}, "time"),
        ({"time": 1710399600}, "time"),
        ({"datacontenttype": "text/plain"}, "datacontenttype"),
        ({"data": "a string"}, "data"),
        ({"data": None}, "data"),
        ({"correlationid": 7}, "correlationid"),
    ],
)
def test_invalid_envelope_is_rejected(changes: dict[str, Any], field: str) -> None:
    document = json.loads(example_event("ScheduleDue").to_json())
    document.update(changes)
    with pytest.raises(ContractError) as info:
        parse_event(json.dumps(document).encode())
    assert info.value.kind == "envelope"
    assert field in str(info.value)
    assert info.value.event_type == (document["type"] or None)


@pytest.mark.parametrize("field", ["id", "type", "time", "source", "organizationid", "specversion", "data"])
def test_missing_envelope_attribute_is_rejected(field: str) -> None:
    document = json.loads(example_event("ScheduleDue").to_json())
    del document[field]
    with pytest.raises(ContractError) as info:
        Envelope.parse(json.dumps(document).encode())
    assert info.value.kind == "envelope"
    assert f"{field}: required field is missing" in str(info.value)


def _with_data_field(value: str) -> bytes:
    return example_event("ScheduleDue").to_json().replace(b'"data":{', b'"data":{"x":' + value.encode() + b",")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"null",
        b"{" * 10_000,
        b"[" * 100_000,
        '{"a": 1}'.encode("utf-16"),
        _with_data_field("NaN"),
        _with_data_field("-Infinity"),
    ],
)
def test_undecodable_message_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert info.value.kind == "decode"
    assert info.value.event_id is None


def test_oversized_message_is_a_decode_error() -> None:
    with pytest.raises(ContractError) as info:
        parse_event(b" " * 1_048_577)
    assert info.value.kind == "decode"


def test_unknown_type_is_reported_with_id_and_type(message: Any) -> None:
    event = example_event("ScheduleDue")
    raw = message("ScheduleDue", example_data("ScheduleDue"), type="ScheduleDue.v9")
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert (info.value.kind, info.value.event_type) == ("unknown_type", "ScheduleDue.v9")
    assert info.value.event_id is not None and info.value.event_id != str(event.id)


def test_invalid_data_error_names_every_field_and_problem(message: Any) -> None:
    data = example_data("EngagementReported", likes="5", shares=-1, observed_at="2027-03-14T07:00:00")
    del data["post_id"]
    raw = message("EngagementReported", data)
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    error = info.value
    assert error.kind == "data"
    assert error.event_type == "EngagementReported"
    assert error.event_id == json.loads(raw)["id"]
    fields = {p.field for p in error.problems}
    assert fields == {"data.post_id", "data.likes", "data.shares", "data.observed_at"}
    text = str(error)
    assert text.startswith("data of EngagementReported invalid: ")
    assert "data.post_id: required field is missing" in text
    assert "data.observed_at: expected an RFC 3339 date-time with an offset" in text


def test_error_messages_do_not_echo_input_values() -> None:
    marker = "s3cr3t-zzzz"
    document = json.loads(example_event("ScheduleDue").to_json())
    document["organizationid"] = marker
    document["data"]["run_id"] = marker
    with pytest.raises(ContractError) as info:
        parse_event(json.dumps(document).encode())
    assert marker not in str(info.value) and "`s`" not in str(info.value)
    document["organizationid"] = ORGANIZATION_ID
    with pytest.raises(ContractError) as info:
        parse_event(json.dumps(document).encode())
    assert info.value.kind == "data" and marker not in str(info.value)


def test_organization_id_must_match_the_envelope(message: Any) -> None:
    raw = message("OrganizationCreated", example_data("OrganizationCreated", organization_id=str(uuid.uuid4())))
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert info.value.kind == "data"
    assert "data.organization_id" in str(info.value)


def test_only_validates_the_types_a_consumer_handles(message: Any) -> None:
    raw = example_event("ScheduleDue").to_json()
    envelope, data = parse_event(raw, only={"PendingPostCreated"})
    assert envelope.type == "ScheduleDue" and data is None
    broken = message("ScheduleDue", {"nothing": "valid"})
    assert parse_event(broken, only=frozenset())[1] is None
    with pytest.raises(ContractError):
        parse_event(broken, only={"ScheduleDue"})
    future = message("ScheduleDue", {}, type="SomethingNew")
    assert parse_event(future, only={"ScheduleDue"})[1] is None
    with pytest.raises(ContractError) as info:
        parse_event(future, only={"SomethingNew"})
    assert info.value.kind == "unknown_type"


def test_registry_matches_design_topics() -> None:
    assert {name: topics_for(name) for name in EVENT_TYPES} == EXPECTED_TOPICS
    assert all(topic_for(name) == expected[0] for name, expected in EXPECTED_TOPICS.items())
    assert set(EXAMPLES) == set(EVENT_TYPES)


def test_every_event_model_is_registered_under_its_class_name() -> None:
    defined = {
        obj
        for module in (ev, account_health, approvals, deadlines, deferral)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, EventData)
        and obj is not EventData
        and not obj.__name__.startswith("_")
    }
    assert defined == {spec.model for spec in EVENT_TYPES.values()}
    for name, spec in EVENT_TYPES.items():
        assert spec.name == name == spec.model.__name__ == type_name_of(spec.model)
        assert model_for(name) is spec.model


def test_topic_lookups() -> None:
    assert topics_for("PostPublished") == ("publisher.events", "analytics.events")
    assert set(types_on(topics.ANALYTICS)) == {
        "ScheduleRunCompleted",
        "PostPublished",
        "EngagementUpdated",
        "CreditsUsage",
    }
    assert set(types_on(topics.PUBLISHER)) == {
        "PostPublished",
        "PostPublishFailed",
        "PostPublishDeferred",
        "PendingPostExpired",
        "SocialAccountTokensRefreshed",
        "SocialAccountNeedsReauth",
    }
    assert type_name_of(example_model("PostPublished")) == "PostPublished"
    assert isinstance(example_model("PostPublished"), PostPublished)
    with pytest.raises(KeyError, match="Nope"):
        model_for("Nope")
    with pytest.raises(KeyError):
        topic_for("Nope")
    with pytest.raises(TypeError):
        type_name_of(Envelope)
