"""One valid example of every event type, in the JSON form producers send.

Tests, fixtures and the docs start from these and change what they need. The ids are
fixed (so examples are reproducible and consistent with each other: the PostPublished
refers to the PendingPostCreated's pending post); the token is a well-formed ciphertext
that no key decrypts (a real one is bound to its organization and account:
`crypto.account_transit_aad`, `hopcast tokens encrypt --organization ID --account ID`).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import datetime
from types import MappingProxyType
from typing import Any

from hopcast_shared.contract.envelope import Envelope
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.making import new_event
from hopcast_shared.contract.registry import model_for


def _id(n: int) -> str:
    return str(uuid.UUID(int=0x5EED_0000_0000_4000_8000_0000_0000_0000 + n))


ORGANIZATION_ID = _id(1)
BRAND_PROFILE_ID = _id(2)
SOCIAL_ACCOUNT_ID = _id(3)
MATERIAL_ID = _id(4)
SCHEDULE_ID = _id(5)
RUN_ID = _id(6)
PENDING_POST_ID = _id(7)
POST_ID = _id(8)
SUBSCRIPTION_ID = _id(9)
GRANT_ID = _id(10)
EVENT_TIME = "2027-03-14T07:00:00Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


EXAMPLE_TOKEN_CIPHERTEXT = f"v1:{_b64(bytes(range(12)))}:{_b64(bytes(range(100, 148)))}"
"""Shaped like a token ciphertext (key 1, 12-byte nonce, 48 bytes); decrypts under no key."""

_BRAND_PROFILE: dict[str, Any] = {
    "brand_profile_id": BRAND_PROFILE_ID,
    "name": "Hopcast Coffee",
    "timezone": "America/New_York",
    "content_pillars": [
        {"name": "brewing tips", "percentage": 50},
        {"name": "behind the scenes", "percentage": 30},
        {"name": "offers", "percentage": 20},
    ],
    "tone": ["warm", "playful"],
    "target_audience": "Home baristas who care about their morning cup",
    "language_rules": {
        "words_to_use": ["fresh", "roast"],
        "words_to_avoid": ["cheap"],
        "emoji_usage": "moderate",
        "hashtag_style": "lowercase",
        "cta_style": "soft",
    },
    "default_hashtags": ["#coffee", "homebarista"],
    "language": "en",
}

_SOCIAL_ACCOUNT: dict[str, Any] = {
    "social_account_id": SOCIAL_ACCOUNT_ID,
    "platform": "MASTODON",
    "handle": "@hopcast@mastodon.example",
    "external_account_id": "109876543210",
    "api_base_url": "https://mastodon.example",
    "access_token": EXAMPLE_TOKEN_CIPHERTEXT,
    "refresh_token": None,
    "token_expires_at": "2027-06-01T00:00:00Z",
    "tokens_issued_at": "2026-03-01T00:00:00Z",
    "is_active": True,
}

_SCHEDULE: dict[str, Any] = {
    "schedule_id": SCHEDULE_ID,
    "brand_profile_id": BRAND_PROFILE_ID,
    "timezone": "America/New_York",
    "times": ["02:30", "09:00", "17:45"],
    "days_of_week": [0, 1, 3, 5],
    "platforms": ["MASTODON", "BLUESKY"],
    "material_strategy": "round_robin",
    "generation_mode": "autopilot",
    "approval_ttl_minutes": 2880,
    "missed_run_policy": "ONCE",
    "is_active": True,
}

_EXAMPLES: dict[str, dict[str, Any]] = {
    "OrganizationCreated": {"organization_id": ORGANIZATION_ID, "name": "Hopcast Coffee Ltd"},
    "OrganizationDeleted": {"organization_id": ORGANIZATION_ID},
    "OrganizationRestored": {"organization_id": ORGANIZATION_ID},
    "BrandProfileCreated": _BRAND_PROFILE,
    "BrandProfileUpdated": _BRAND_PROFILE,
    "BrandProfileDeleted": {"brand_profile_id": BRAND_PROFILE_ID},
    "BrandProfileRestored": {"brand_profile_id": BRAND_PROFILE_ID},
    "SocialAccountConnected": _SOCIAL_ACCOUNT,
    "SocialAccountUpdated": _SOCIAL_ACCOUNT,
    "SocialAccountDeleted": {"social_account_id": SOCIAL_ACCOUNT_ID},
    "SocialAccountRestored": {"social_account_id": SOCIAL_ACCOUNT_ID},
    "BrandAccountLinked": {
        "brand_profile_id": BRAND_PROFILE_ID,
        "social_account_id": SOCIAL_ACCOUNT_ID,
        "is_default": True,
    },
    "BrandAccountUnlinked": {"brand_profile_id": BRAND_PROFILE_ID, "social_account_id": SOCIAL_ACCOUNT_ID},
    "MaterialSubmitted": {
        "material_id": MATERIAL_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "type": "TEXT",
        "title": "Why we roast on Tuesdays",
        "body": "We roast every Tuesday so that every bag you get is less than a week old.",
        "media": [
            {
                "url": "https://cdn.example/roastery/tuesday-roast.jpg",
                "alt_text": "A roaster pouring freshly roasted beans into a cooling tray",
                "mime_type": "image/jpeg",
            }
        ],
        "content_pillar": "behind the scenes",
        "max_uses": 3,
    },
    "MaterialArchived": {"material_id": MATERIAL_ID},
    "MaterialDeleted": {"material_id": MATERIAL_ID},
    "MaterialRestored": {"material_id": MATERIAL_ID},
    "PostDeleted": {"post_id": POST_ID},
    "PostRestored": {"post_id": POST_ID},
    "ScheduleCreated": _SCHEDULE,
    "ScheduleUpdated": _SCHEDULE,
    "SchedulePaused": {"schedule_id": SCHEDULE_ID},
    "ScheduleResumed": {"schedule_id": SCHEDULE_ID},
    "ScheduleDeleted": {"schedule_id": SCHEDULE_ID},
    "ScheduleTriggerRequested": {"schedule_id": SCHEDULE_ID},
    "PendingPostApproved": {"pending_post_id": PENDING_POST_ID},
    "PendingPostRejected": {"pending_post_id": PENDING_POST_ID},
    "SubscriptionActivated": {
        "subscription_id": SUBSCRIPTION_ID,
        "plan": "GROWTH",
        "credits_total": 1000,
        "period_start": "2027-03-01T00:00:00Z",
        "period_end": "2027-04-01T00:00:00Z",
    },
    "CreditsGranted": {"grant_id": GRANT_ID, "amount": 50, "reason": "spring promotion"},
    "EngagementReported": {
        "post_id": POST_ID,
        "likes": 12,
        "comments": 3,
        "shares": 2,
        "impressions": 480,
        "observed_at": "2027-03-15T07:00:00Z",
    },
    "ScheduleDue": {
        "run_id": RUN_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "due_at": EVENT_TIME,
        "platforms": ["MASTODON", "BLUESKY"],
        "target_pillar": "brewing tips",
    },
    "RunDeadlinePassed": {
        "run_id": RUN_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "due_at": EVENT_TIME,
        "deadline": "2027-03-14T08:00:00Z",
    },
    "PendingPostCreated": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "material_id": MATERIAL_ID,
        "due_at": EVENT_TIME,
        "content": "Every bag we ship was roasted less than a week ago. Taste the difference.",
        "texts": {
            "MASTODON": "Every bag we ship was roasted less than a week ago. Taste the difference."
            "\n\n#coffee #freshroast",
            "BLUESKY": "Every bag we ship was roasted less than a week ago. Taste the difference."
            "\n\n#coffee #freshroast",
        },
        "hashtags": ["#coffee", "#freshroast"],
        "media": [
            {
                "url": "https://cdn.example/roastery/tuesday-roast.jpg",
                "alt_text": "A roaster pouring freshly roasted beans into a cooling tray",
                "mime_type": "image/jpeg",
            }
        ],
        "platforms": ["MASTODON", "BLUESKY"],
        "platforms_left_out": [],
        "angle": "USER_BENEFIT",
        "angle_reason": "Freshness is the benefit customers mention most.",
        "max_similarity": 0.42,
        "requires_approval": False,
    },
    "PendingPostEditAccepted": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "approval_id": _id(11),
        "texts": {"BLUESKY": "Roasted this week, in your cup next week. #coffee"},
        "max_similarity": 0.38,
    },
    "PendingPostEditRefused": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "approval_id": _id(11),
        "platform": "BLUESKY",
        "reason": "TEXT_BREAKS_RULE",
        "detail": "the text breaks BLUESKY's rule: 412 graphemes over the limit of 300",
    },
    "ScheduleRunSkipped": {
        "run_id": RUN_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "reason": "ALL_CANDIDATES_DUPLICATE",
    },
    "CreditsDebited": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "amount": 3,
        "action": "GENERATE",
        "balance_after": 997,
    },
    "CreditsDebitRejected": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "requested": 3,
        "available": 1,
        "reason": "INSUFFICIENT_CREDITS",
    },
    "CreditsRefunded": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "amount": 1,
        "balance_after": 998,
        "reason": "PUBLISH_FAILED",
    },
    "PostPublished": {
        "post_id": POST_ID,
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "material_id": MATERIAL_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "social_account_id": SOCIAL_ACCOUNT_ID,
        "platform": "MASTODON",
        "angle": "USER_BENEFIT",
        "external_id": "sandbox-110123",
        "external_url": "https://mastodon.example/@hopcast/110123",
        "published_at": "2027-03-14T07:00:05Z",
        "hashtags": ["#coffee", "#freshroast"],
        "media": [
            {
                "url": "https://cdn.example/roastery/tuesday-roast.jpg",
                "alt_text": "A roaster pouring freshly roasted beans into a cooling tray",
                "mime_type": "image/jpeg",
            }
        ],
        "angle_reason": "Freshness is the benefit customers mention most.",
    },
    "PostPublishFailed": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "platform": "BLUESKY",
        "reason": "TOKEN_INVALID",
        "detail": "the platform answered 401 after a token refresh",
    },
    "PostPublishDeferred": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "platform": "TWITTER",
        "retry_at": "2027-03-15T06:12:00Z",
        "reason": "DAILY_CAP",
    },
    "PendingPostExpired": {
        "pending_post_id": PENDING_POST_ID,
        "run_id": RUN_ID,
        "approval_deadline": "2027-03-16T07:00:02Z",
    },
    "SocialAccountTokensRefreshed": {
        "social_account_id": SOCIAL_ACCOUNT_ID,
        "access_token": EXAMPLE_TOKEN_CIPHERTEXT,
        "refresh_token": EXAMPLE_TOKEN_CIPHERTEXT,
        "token_expires_at": "2027-03-14T09:00:05Z",
        "tokens_issued_at": "2027-03-14T07:00:05Z",
    },
    "SocialAccountNeedsReauth": {
        "social_account_id": SOCIAL_ACCOUNT_ID,
        "platform": "TWITTER",
        "reason": "REFRESH_REJECTED",
    },
    "ScheduleRunCompleted": {
        "run_id": RUN_ID,
        "schedule_id": SCHEDULE_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "outcome": "PARTIALLY_PUBLISHED",
        "due_at": EVENT_TIME,
        "completed_at": "2027-03-14T07:00:06Z",
    },
    "EngagementUpdated": {
        "post_id": POST_ID,
        "brand_profile_id": BRAND_PROFILE_ID,
        "platform": "MASTODON",
        "angle": "USER_BENEFIT",
        "likes": 12,
        "comments": 3,
        "shares": 2,
        "impressions": 480,
        "engagement_rate": 0.0354,
    },
    "CreditsUsage": {
        "action": "GENERATE",
        "amount": 3,
        "balance_after": 997,
        "period_end": "2027-04-01T00:00:00Z",
    },
}

EXAMPLES: MappingProxyType[str, dict[str, Any]] = MappingProxyType(_EXAMPLES)
"""Example data by type name, as JSON-ready dicts (use `example_data` for a copy to change)."""


def example_data(type_name: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of the example data of a type, with `changes` applied on top."""
    data = copy.deepcopy(_EXAMPLES[type_name])
    data.update(changes)
    return data


def example_model(type_name: str, **changes: Any) -> EventData:
    """The example as a validated data model."""
    return model_for(type_name).model_validate_json(json.dumps(example_data(type_name, **changes)))


def example_event(
    type_name: str,
    *,
    organization_id: uuid.UUID | str = ORGANIZATION_ID,
    source: str = "upstream/examples",
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
    **changes: Any,
) -> Envelope:
    """The example wrapped in an envelope (a fresh id unless given; time 2027-03-14T07:00:00Z).

    Data that names the organization (OrganizationCreated...) names the envelope's one.
    """
    if "organization_id" in _EXAMPLES[type_name]:
        changes.setdefault("organization_id", str(organization_id))
    return new_event(
        example_model(type_name, **changes),
        organization_id=organization_id,
        source=source,
        correlation_id=correlation_id,
        event_id=event_id,
        time=time or datetime.fromisoformat(EVENT_TIME),
    )
