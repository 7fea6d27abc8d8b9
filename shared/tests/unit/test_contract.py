"""The event contract: every type accepts its example and refuses what DESIGN.md rules out."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from hopcast_shared import topics
from hopcast_shared.contract import (
    CONTENT_TYPE,
    EVENT_TYPES,
    ContractError,
    Envelope,
    EventData,
    GenerationMode,
    MaterialSubmitted,
    MissedRunPolicy,
    OrganizationCreated,
    Platform,
    PostPublished,
    ScheduleCreated,
    SocialAccountConnected,
    account_health,
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
    EXAMPLE_TOKEN_CIPHERTEXT,
    EXAMPLES,
    ORGANIZATION_ID,
    example_data,
    example_event,
    example_model,
)

ALL_TYPES = sorted(EVENT_TYPES)
LEAKED_PLAINTEXT = "ya29.a0AfH6SMBx-very-secret-oauth-token-value"

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
    "PendingPostCreated": (topics.CONTENT,),
    "ScheduleRunSkipped": (topics.CONTENT,),
    "CreditsDebited": (topics.BILLING,),
    "CreditsDebitRejected": (topics.BILLING,),
    "CreditsRefunded": (topics.BILLING,),
    "PostPublished": (topics.PUBLISHER, topics.ANALYTICS),
    "PostPublishFailed": (topics.PUBLISHER,),
    "PostPublishDeferred": (topics.PUBLISHER,),
    "SocialAccountTokensRefreshed": (topics.PUBLISHER,),
    "SocialAccountNeedsReauth": (topics.PUBLISHER,),
    "ScheduleRunCompleted": (topics.ANALYTICS,),
    "EngagementUpdated": (topics.ANALYTICS,),
    "CreditsUsage": (topics.ANALYTICS,),
}


def validate(type_name: str, data: dict[str, Any]) -> EventData:
    """Validate data the way a consumer does: from JSON."""
    return model_for(type_name).model_validate_json(json.dumps(data))


def rejects(type_name: str, data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate(type_name, data)
    return info.value


def message(type_name: str, data: dict[str, Any], **envelope: Any) -> bytes:
    document = json.loads(example_event(type_name).to_json())
    document["data"] = data
    document.update(envelope)
    return json.dumps(document).encode()


# --- every type: the example, extra fields, missing fields, wrong JSON types -------------


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_example_is_valid(type_name: str) -> None:
    model = validate(type_name, example_data(type_name))
    assert type_name_of(model) == type_name


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_round_trip_through_the_envelope(type_name: str) -> None:
    event = example_event(type_name, correlation_id="run-1")
    envelope, data = parse_event(event.to_json())
    assert envelope == event
    assert data == example_model(type_name)
    assert json.loads(event.to_json())["data"] == json.loads(json.dumps(data.model_dump(mode="json")))


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_unknown_data_fields_are_ignored(type_name: str) -> None:
    data = example_data(type_name, added_in_a_later_version={"anything": [1, 2]}, flag=True)
    assert validate(type_name, data) == example_model(type_name)


REQUIRED_FIELDS = [
    (name, field) for name in ALL_TYPES for field, info in model_for(name).model_fields.items() if info.is_required()
]


@pytest.mark.parametrize(("type_name", "field"), REQUIRED_FIELDS)
def test_missing_required_field_is_rejected(type_name: str, field: str) -> None:
    data = example_data(type_name)
    del data[field]
    error = rejects(type_name, data)
    assert any(e["loc"] == (field,) and e["type"] == "missing" for e in error.errors())


def _wrong_json_values(prop: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    """Values of the wrong JSON type for a property of a JSON Schema."""
    nullable = "anyOf" in prop
    if nullable:
        prop = next(p for p in prop["anyOf"] if p.get("type") != "null")
    if "$ref" in prop:
        prop = defs[prop["$ref"].rsplit("/", 1)[1]]
    kind: str = prop["type"] if "enum" not in prop else "enum"
    values: list[Any] = {
        "enum": [5, ["x"], None],
        "string": [5, True, ["x"], {"a": "b"}, None],
        "integer": ["5", True, 5.5, None],
        "number": ["0.5", True, None],
        "boolean": ["true", 1, None],
        "array": ["x", 5, {"a": 1}, None],
        "object": ["x", 5, ["x"], None],
    }[kind]
    return [v for v in values if not (nullable and v is None)]


WRONG_TYPES = [
    (name, field, value)
    for name in ALL_TYPES
    for schema in [model_for(name).model_json_schema()]
    for field, prop in schema["properties"].items()
    for value in _wrong_json_values(prop, schema.get("$defs", {}))
]


@pytest.mark.parametrize(("type_name", "field", "value"), WRONG_TYPES)
def test_wrong_json_type_is_rejected(type_name: str, field: str, value: Any) -> None:
    """No coercion: "5" is not an int, true is not an int, 5 is not a string."""
    rejects(type_name, example_data(type_name, **{field: value}))


@pytest.mark.parametrize(
    ("type_name", "changes"),
    [
        ("EngagementReported", {"likes": -1}),
        ("EngagementReported", {"impressions": 2**63}),
        ("EngagementUpdated", {"engagement_rate": -0.1}),
        ("CreditsDebited", {"amount": 0}),
        ("CreditsDebited", {"balance_after": -1}),
        ("CreditsDebited", {"action": "TOPUP"}),
        ("CreditsGranted", {"amount": -5}),
        ("CreditsGranted", {"reason": ""}),
        ("CreditsDebitRejected", {"available": -1}),
        ("SubscriptionActivated", {"credits_total": 0}),
        ("SubscriptionActivated", {"plan": "ENTERPRISE"}),
        ("SubscriptionActivated", {"period_end": "2027-02-01T00:00:00Z"}),
        ("OrganizationCreated", {"name": ""}),
        ("OrganizationCreated", {"name": "x" * 201}),
        ("MaterialSubmitted", {"body": "x" * 20_001}),
        ("MaterialSubmitted", {"max_uses": 0}),
        ("MaterialSubmitted", {"type": "PODCAST"}),
        ("MaterialSubmitted", {"body": "   ", "media_urls": []}),
        ("MaterialSubmitted", {"type": "IMAGE", "media_urls": []}),
        ("MaterialSubmitted", {"media_urls": ["ftp://example.com/a.png"]}),
        ("MaterialSubmitted", {"media_urls": ["https://cdn.example/a.png"] * 21}),
        ("PendingPostCreated", {"hashtags": [f"#tag{i}" for i in range(31)]}),
        ("PendingPostCreated", {"hashtags": ["two words"]}),
        ("PendingPostCreated", {"content": ""}),
        ("PendingPostCreated", {"max_similarity": 1.5}),
        ("PendingPostCreated", {"angle": "CLICKBAIT"}),
        ("ScheduleDue", {"platforms": []}),
        ("ScheduleDue", {"platforms": ["MASTODON", "MASTODON"]}),
        ("ScheduleDue", {"platforms": ["MYSPACE"]}),
        ("ScheduleCreated", {"days_of_week": []}),
        ("ScheduleCreated", {"days_of_week": [7]}),
        ("ScheduleCreated", {"days_of_week": [-1]}),
        ("ScheduleCreated", {"days_of_week": [1, 1]}),
        ("ScheduleCreated", {"times": []}),
        ("ScheduleCreated", {"times": ["09:00", "09:00"]}),
        ("ScheduleCreated", {"times": [f"{h:02d}:00" for h in range(11)]}),
        ("ScheduleCreated", {"missed_run_policy": "TWICE"}),
        ("ScheduleCreated", {"material_strategy": "ROUND_ROBIN"}),
        ("ScheduleCreated", {"generation_mode": "AUTOPILOT"}),
        ("ScheduleRunSkipped", {"reason": "BORED"}),
        ("ScheduleRunCompleted", {"outcome": "DONE"}),
        ("PostPublishFailed", {"reason": "UNKNOWN"}),
        ("PostPublished", {"external_url": "not a url"}),
        ("SocialAccountConnected", {"api_base_url": None}),
        (
            "BrandProfileCreated",
            {"content_pillars": [{"name": "a", "percentage": 60}, {"name": "b", "percentage": 41}]},
        ),
        ("BrandProfileCreated", {"content_pillars": [{"name": "a", "percentage": 101}]}),
        ("BrandProfileCreated", {"content_pillars": [{"name": "a", "percentage": -1}]}),
        (
            "BrandProfileCreated",
            {"content_pillars": [{"name": "a", "percentage": 10}, {"name": "A", "percentage": 10}]},
        ),
        ("BrandProfileCreated", {"content_pillars": [{"name": "a"}]}),
        ("BrandProfileCreated", {"language_rules": {"words_to_use": []}}),
        ("BrandProfileCreated", {"default_hashtags": ["#" + "x" * 100]}),
    ],
)
def test_out_of_range_values_are_rejected(type_name: str, changes: dict[str, Any]) -> None:
    rejects(type_name, example_data(type_name, **changes))


def test_values_at_the_limits_are_accepted() -> None:
    validate("ScheduleCreated", example_data("ScheduleCreated", times=[f"{h:02d}:59" for h in range(10)]))
    validate("ScheduleCreated", example_data("ScheduleCreated", days_of_week=[6, 5, 4, 3, 2, 1, 0]))
    validate("ScheduleDue", example_data("ScheduleDue", platforms=[p.value for p in Platform]))
    validate("PendingPostCreated", example_data("PendingPostCreated", hashtags=["#a"] * 30, max_similarity=-1))
    validate("MaterialSubmitted", example_data("MaterialSubmitted", body="x" * 20_000, max_uses=None))
    pillars = [
        {"name": "a", "percentage": 33.3},
        {"name": "b", "percentage": 33.3},
        {"name": "c", "percentage": 33.4},
    ]
    validate("BrandProfileCreated", example_data("BrandProfileCreated", content_pillars=pillars))
    validate("BrandProfileCreated", example_data("BrandProfileCreated", content_pillars=[]))
    validate("EngagementReported", example_data("EngagementReported", likes=0, impressions=2**63 - 1))


# --- time zones, local times, datetimes ---------------------------------------------------


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "localtime", "../../etc/passwd", "europe/paris", "+02:00"])
def test_invalid_timezone_is_rejected(tz: str) -> None:
    for type_name in ("ScheduleCreated", "BrandProfileUpdated"):
        error = rejects(type_name, example_data(type_name, timezone=tz))
        assert error.errors()[0]["loc"] == ("timezone",)


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/Argentina/Buenos_Aires"])
def test_iana_timezones_are_accepted(tz: str) -> None:
    assert validate("ScheduleCreated", example_data("ScheduleCreated", timezone=tz)).timezone == tz  # type: ignore[attr-defined]


@pytest.mark.parametrize("hhmm", ["24:00", "9:00", "09:60", "0900", "09:00:00", " 09:00", "09:0", "", "ab:cd"])
def test_invalid_local_time_is_rejected(hhmm: str) -> None:
    error = rejects("ScheduleCreated", example_data("ScheduleCreated", times=[hhmm]))
    assert error.errors()[0]["loc"] == ("times", 0)


@pytest.mark.parametrize(
    "when",
    ["2027-03-14T07:00:00", "2027-03-14", "07:00", "1710399600", "yesterday", "2027-03-14T07:00:00+0200", ""],
)
def test_naive_or_malformed_datetime_is_rejected(when: str) -> None:
    rejects("ScheduleDue", example_data("ScheduleDue", due_at=when))
    rejects("CreditsUsage", example_data("CreditsUsage", period_end=when))


def test_datetimes_are_normalized_to_utc() -> None:
    due = validate("ScheduleDue", example_data("ScheduleDue", due_at="2027-03-14T03:00:00-04:00"))
    assert due.due_at == datetime(2027, 3, 14, 7, tzinfo=UTC)  # type: ignore[attr-defined]
    assert due.due_at.tzinfo is UTC  # type: ignore[attr-defined]
    assert due.model_dump(mode="json")["due_at"] == "2027-03-14T07:00:00Z"


# --- defaults -------------------------------------------------------------------------------


def test_defaults() -> None:
    data = example_data("ScheduleCreated")
    for name in ("material_strategy", "generation_mode", "missed_run_policy", "is_active"):
        del data[name]
    schedule = validate("ScheduleCreated", data)
    assert isinstance(schedule, ScheduleCreated)
    assert schedule.missed_run_policy is MissedRunPolicy.ONCE
    assert schedule.generation_mode is GenerationMode.AUTOPILOT
    assert schedule.material_strategy.value == "round_robin"
    assert schedule.is_active is True

    data = example_data("MaterialSubmitted")
    del data["max_uses"], data["title"], data["content_pillar"]
    material = validate("MaterialSubmitted", data)
    assert isinstance(material, MaterialSubmitted)
    assert (material.max_uses, material.title, material.content_pillar) == (1, None, None)
    unlimited = validate("MaterialSubmitted", example_data("MaterialSubmitted", max_uses=None))
    assert unlimited.max_uses is None  # type: ignore[attr-defined]

    data = example_data("SocialAccountConnected")
    for name in ("refresh_token", "token_expires_at", "external_account_id", "is_active"):
        del data[name]
    account = validate("SocialAccountConnected", data)
    assert isinstance(account, SocialAccountConnected)
    assert account.is_active is True and account.refresh_token is None

    link = example_data("BrandAccountLinked")
    del link["is_default"]
    assert validate("BrandAccountLinked", link).is_default is False  # type: ignore[attr-defined]


def test_models_are_frozen_and_strict_in_python_too() -> None:
    org = example_model("OrganizationCreated")
    with pytest.raises(ValidationError):
        org.name = "renamed"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        ev.EngagementReported.model_validate(example_data("EngagementReported", likes="5"))
    with pytest.raises(ValidationError):
        OrganizationCreated(organization_id=uuid.UUID(ORGANIZATION_ID), name=5)  # type: ignore[arg-type]


def test_python_dicts_from_json_validate_like_json() -> None:
    """UUIDs, enums and times may be given as their strings from Python too (database rows)."""
    for type_name in ALL_TYPES:
        assert model_for(type_name).model_validate(example_data(type_name)) == example_model(type_name)
    due = ev.ScheduleDue(
        run_id=uuid.uuid4(),
        schedule_id=uuid.UUID(EXAMPLES["ScheduleDue"]["schedule_id"]),
        brand_profile_id=EXAMPLES["ScheduleDue"]["brand_profile_id"],
        due_at=datetime(2027, 3, 14, 7, tzinfo=UTC),
        platforms=["TWITTER", Platform.LINKEDIN],  # type: ignore[list-item]
    )
    assert due.platforms == [Platform.TWITTER, Platform.LINKEDIN]


def test_example_event_keeps_the_organization_consistent() -> None:
    other = str(uuid.uuid4())
    envelope, data = parse_event(example_event("OrganizationCreated", organization_id=other).to_json())
    assert str(envelope.organizationid) == other == str(data.organization_id)  # type: ignore[union-attr]


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        LEAKED_PLAINTEXT,
        "v1:" + LEAKED_PLAINTEXT,
        "v1:AAAAAAAAAAAAAAAA",
        "v1:AAAAAAAAAAAAAAA:" + "B" * 40,  # 15-character nonce
        "v1:AAAAAAAAAAAAAAAA:short",  # shorter than the GCM tag
        "vX:AAAAAAAAAAAAAAAA:" + "B" * 40,
        "v1:AAAAAAAAAAAAAAAA:" + "B+/" * 20,  # not base64url
        "",
    ],
)
@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
def test_token_that_is_not_a_ciphertext_is_rejected_without_leaking_it(token: str, field: str) -> None:
    data = example_data("SocialAccountConnected", **{field: token})
    error = rejects("SocialAccountConnected", data)
    assert [e["loc"] for e in error.errors()] == [(field,)]
    if token:
        assert token not in str(error)
        assert token not in repr(error)
    with pytest.raises(ContractError) as info:
        parse_event(message("SocialAccountConnected", data))
    assert info.value.kind == "data"
    assert field in str(info.value)
    if token:
        assert token not in str(info.value) and token not in repr(info.value)


def test_token_ciphertext_is_accepted_and_kept_out_of_repr() -> None:
    account = validate("SocialAccountUpdated", example_data("SocialAccountUpdated"))
    assert account.access_token == EXAMPLE_TOKEN_CIPHERTEXT  # type: ignore[attr-defined]
    assert EXAMPLE_TOKEN_CIPHERTEXT not in repr(account)


# --- envelope ---------------------------------------------------------------------------------


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


def test_unknown_type_is_reported_with_id_and_type() -> None:
    event = example_event("ScheduleDue")
    raw = message("ScheduleDue", example_data("ScheduleDue"), type="ScheduleDue.v9")
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert (info.value.kind, info.value.event_type) == ("unknown_type", "ScheduleDue.v9")
    assert info.value.event_id is not None and info.value.event_id != str(event.id)


def test_invalid_data_error_names_every_field_and_problem() -> None:
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


def test_organization_id_must_match_the_envelope() -> None:
    raw = message("OrganizationCreated", example_data("OrganizationCreated", organization_id=str(uuid.uuid4())))
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert info.value.kind == "data"
    assert "data.organization_id" in str(info.value)


def test_only_validates_the_types_a_consumer_handles() -> None:
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


# --- registry ---------------------------------------------------------------------------------


def test_registry_matches_design_topics() -> None:
    assert {name: topics_for(name) for name in EVENT_TYPES} == EXPECTED_TOPICS
    assert all(topic_for(name) == expected[0] for name, expected in EXPECTED_TOPICS.items())
    assert set(EXAMPLES) == set(EVENT_TYPES)


def test_every_event_model_is_registered_under_its_class_name() -> None:
    defined = {
        obj
        for module in (ev, account_health, deferral)
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
