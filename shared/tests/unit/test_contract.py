"""The event contract's data: every type accepts its example and refuses what DESIGN.md rules out
(missing fields, wrong JSON types, values out of range, bad time zones and times, tokens that
are not ciphertexts), with its defaults; models are frozen and strict. (The envelope and the
topic registry: test_contract_envelope_and_registry.py.)
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hopcast_shared.contract import (
    EVENT_TYPES,
    ContractError,
    EventData,
    GenerationMode,
    MaterialSubmitted,
    MissedRunPolicy,
    OrganizationCreated,
    Platform,
    ScheduleCreated,
    SocialAccountConnected,
    model_for,
    parse_event,
    type_name_of,
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


def validate(type_name: str, data: dict[str, Any]) -> EventData:
    """Validate data the way a consumer does: from JSON."""
    return model_for(type_name).model_validate_json(json.dumps(data))


def rejects(type_name: str, data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate(type_name, data)
    return info.value


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
        ("MaterialSubmitted", {"body": "   ", "media": []}),
        ("MaterialSubmitted", {"type": "IMAGE", "media": []}),
        ("MaterialSubmitted", {"media": [{"url": "ftp://example.com/a.png"}]}),
        ("MaterialSubmitted", {"media": [{"url": "https://cdn.example/a.png", "mime_type": "image"}]}),
        ("MaterialSubmitted", {"media": [{"url": "https://cdn.example/a.png", "alt_text": "a" * 2001}]}),
        ("MaterialSubmitted", {"media": [{"url": "https://cdn.example/a.png"}] * 21}),
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
def test_token_that_is_not_a_ciphertext_is_rejected_without_leaking_it(token: str, field: str, message: Any) -> None:
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
