"""The value types the event contract is built from: ids, UTC times, bounded text, time
zones, local times of day, token ciphertexts, and the base model every event shares.

Validators here never put the offending value in their message: events carry secrets
(tokens) and user content, and validation errors end up in logs and dead letters.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from hopcast_shared.contract.enums import Platform
from hopcast_shared.crypto import CIPHERTEXT_PATTERN
from hopcast_shared.public_address import why_not_public_url

# A token ciphertext of the shared token-encryption module (AES-256-GCM):
# `v<key id>:<nonce>:<ciphertext+tag>`, the nonce 12 bytes and the ciphertext at least the
# 16-byte tag, both base64url (the nonce exactly 16 characters, no padding).
# The token module's own format, so the contract accepts exactly what it can decrypt.
TOKEN_CIPHERTEXT_PATTERN = CIPHERTEXT_PATTERN
TOKEN_CIPHERTEXT_MAX_LENGTH = 16_384
_TOKEN_CIPHERTEXT_RE = re.compile(TOKEN_CIPHERTEXT_PATTERN)  # used with fullmatch

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339_RE = re.compile(RFC3339_PATTERN)
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
HASHTAG_PATTERN = r"^#?[^\s#]{1,99}$"
URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
PLATFORM_URL_PATTERN = r"^https://[^\s/?#]+[^\s]*$"
_PLATFORM_URL_RE = re.compile(PLATFORM_URL_PATTERN)

# Upper bounds that keep every value inside a Postgres bigint and every text reasonable.
MAX_BIGINT = 2**63 - 1
# (likes + comments + shares) / impressions, three Counts over at least one impression: the
# most an engagement rate can be, and far inside float8, whose sums and means it keeps finite.
MAX_ENGAGEMENT_RATE = 3.0 * MAX_BIGINT
MAX_CREDITS = 1_000_000_000
MAX_NAME = 200
MAX_BODY = 20_000
MAX_SHORT_TEXT = 2_000
MAX_URL = 2_048
MAX_HASHTAGS = 30
MAX_MEDIA_URLS = 20
MAX_TIMES_PER_DAY = 10
MAX_PLATFORMS = 10

# Zone keys that are no place: the host's own setting, or placeholders.
_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class ContractModel(BaseModel):
    """Base of every model of the contract.

    Strict (no coercion: "5" is not an int, true is not an int, 5 is not a string), frozen,
    and forward compatible: unknown fields are ignored, missing or wrong ones rejected.
    UUIDs, datetimes and enums arrive as strings; they are also accepted as strings from
    Python (see `LAX`), so `model_validate_json` and `model_validate(json.loads(...))` agree.
    Input values are hidden from validation errors, which may be logged.
    """

    model_config = ConfigDict(
        extra="ignore", strict=True, frozen=True, hide_input_in_errors=True, use_attribute_docstrings=True
    )


def _rfc3339(value: object) -> object:
    # Parsed here rather than by pydantic, which also reads unix timestamps ("1710399600")
    # and other shapes from strings.
    if not isinstance(value, str):
        return value
    if _RFC3339_RE.match(value):
        try:
            return datetime.fromisoformat(value.upper())
        except ValueError:
            pass  # e.g. February 30th
    raise PydanticCustomError("rfc3339", "expected an RFC 3339 date-time with an offset, e.g. 2027-03-14T07:00:00Z")


LAX = Strict(False)
"""For UUID and enum fields: accept their string form from Python too (a database row, a
dict from `json.loads`), as strict mode already does from JSON. They take no other input:
an int is neither a UUID nor one of an enum's names."""

Id = Annotated[UUID, LAX]
"""A UUID; a string in JSON."""


def _as_utc(value: datetime) -> datetime:
    # `9999-12-31T23:59:59-23:59` and `0001-01-01T00:00:00+01:00` are valid RFC 3339 whose UTC
    # instant falls outside what a datetime (and PostgreSQL's timestamptz) can hold: refuse them
    # as the contract error they are, not an OverflowError that nothing would catch.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("utc_range", "the time in UTC falls outside years 1 to 9999") from None


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_as_utc)]
"""An RFC 3339 time with an offset (`2027-03-14T07:00:00Z`), normalized to UTC; naive
times, unix timestamps and other ISO 8601 shapes are rejected."""


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _HOST_DEPENDENT_ZONES


def _iana_timezone(value: str) -> str:
    if value not in _known_zones():
        raise PydanticCustomError("iana_timezone", "expected an IANA time zone name such as Europe/Paris")
    return value


IanaTimezone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_timezone)]
"""An IANA time zone key known to zoneinfo (`Europe/Paris`, `UTC`)."""

LanguageTag = Annotated[str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
"""A BCP-47 language tag: a primary language, then subtags (`en`, `pt-BR`, `zh-Hant`)."""

LocalTimeOfDay = Annotated[str, StringConstraints(pattern=HHMM_PATTERN)]
"""A local wall-clock time `HH:MM`, 00:00 to 23:59."""


def _token_ciphertext(value: str) -> str:
    if len(value) > TOKEN_CIPHERTEXT_MAX_LENGTH or not _TOKEN_CIPHERTEXT_RE.fullmatch(value):
        # Never include the value: it may be a plaintext token sent by mistake.
        raise PydanticCustomError(
            "token_not_ciphertext",
            "expected a token ciphertext `v<key id>:<nonce>:<ciphertext>` from the token-encryption "
            "module (the value is not shown)",
        )
    return value


TokenCiphertext = Annotated[
    str, AfterValidator(_token_ciphertext), Field(json_schema_extra={"pattern": TOKEN_CIPHERTEXT_PATTERN})
]
"""An OAuth token as ciphertext of the shared token-encryption module, never plaintext."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
ShortText = Annotated[str, StringConstraints(max_length=MAX_SHORT_TEXT)]
Hashtag = Annotated[str, StringConstraints(pattern=HASHTAG_PATTERN)]
Url = Annotated[str, StringConstraints(max_length=MAX_URL, pattern=URL_PATTERN)]


def _platform_url(value: str) -> str:
    why = why_not_public_url(value)
    if why is None and not _PLATFORM_URL_RE.fullmatch(value):
        why = "not a valid URL"
    if why is not None:
        # The reason is one of a few fixed phrases; the URL itself is not shown.
        raise PydanticCustomError("egress_refused", "must be an https URL of a public host: {why}", {"why": why})
    return value


PlatformUrl = Annotated[
    str,
    StringConstraints(max_length=MAX_URL),
    AfterValidator(_platform_url),
    Field(json_schema_extra={"pattern": PLATFORM_URL_PATTERN}),
]
"""A URL the publisher calls with an account's token: https, no credentials in it, and not
a local name or a literal address that is not public (names are judged when they resolve,
at connect time, by the publisher's egress guard)."""
Count = Annotated[int, Field(ge=0, le=MAX_BIGINT)]
"""A non-negative count (likes, impressions)."""
Credits = Annotated[int, Field(ge=1, le=MAX_CREDITS)]
"""A positive amount of whole credits."""
Balance = Annotated[int, Field(ge=0, le=MAX_BIGINT)]
"""A credit balance, never below zero."""

H = TypeVar("H", bound=Hashable)


def unique_items(values: list[H]) -> list[H]:
    """Reject a list holding the same item twice (used as an AfterValidator)."""
    if len(set(values)) != len(values):
        raise PydanticCustomError("unique_items", "items must be unique")
    return values


UNIQUE: dict[str, Any] = {"uniqueItems": True}
"""JSON Schema marker for lists validated with `unique_items`."""


PostText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
PlatformTexts = Annotated[dict[Annotated[Platform, LAX], PostText], Field(max_length=MAX_PLATFORMS)]
"""The exact text to post on each platform, within that platform's own counting rule
(`hopcast_shared.text_rules`); empty in events from before texts existed."""


# --- Field shapes the events share ------------------------------------------------------

Platforms = Annotated[
    list[Annotated[Platform, LAX]],
    Field(min_length=1, max_length=MAX_PLATFORMS, json_schema_extra=UNIQUE),
    AfterValidator(unique_items),
]
"""1 to 10 distinct platforms."""
Hashtags = Annotated[list[Hashtag], Field(max_length=MAX_HASHTAGS)]
"""At most 30 hashtags, each one word, with or without the leading `#`."""
MediaUrls = Annotated[list[Url], Field(max_length=MAX_MEDIA_URLS)]
"""At most 20 http(s) URLs."""
Word = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Words = Annotated[list[Word], Field(max_length=200)]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY)]
Similarity = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Percentage = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
