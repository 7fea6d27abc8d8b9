"""A pending post as the publishing steps see it, and its attempt on each platform: plain
values, read from the database by the adapters, that the service layer decides on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from hopcast_shared.contract.text import post_text
from hopcast_shared.text_rules import TextRule, rule_for


@dataclass(frozen=True, slots=True)
class MediaOfPost:
    """One image or video of a post, as drafted: every platform gets it as media (issue 18)."""

    url: str
    alt_text: str | None = None
    mime_type: str | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> MediaOfPost:
        return cls(item["url"], item.get("alt_text"), item.get("mime_type"))

    def as_json(self) -> dict[str, str | None]:
        return {"url": self.url, "alt_text": self.alt_text, "mime_type": self.mime_type}


@dataclass(frozen=True, slots=True)
class PublishingPost:
    """A pending post with all its inputs, being published (or just completed).

    Its drafted fields (run_id to angle) are set once PendingPostCreated arrived, before
    publishing starts; only a corrupt row lacks one, and completing that post then fails on
    the contract, alone (`giving_up`)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    run_id: uuid.UUID
    schedule_id: uuid.UUID
    brand_profile_id: uuid.UUID
    material_id: uuid.UUID
    due_at: datetime
    content: str
    hashtags: Sequence[str] | None
    media_urls: Sequence[str] | None
    platforms: Sequence[str]
    angle: str
    cause_event_id: uuid.UUID | None
    trace_headers: Sequence[Sequence[str]] | None
    """The W3C trace context of the input that started its publishing, as (name, value) pairs."""
    claims: int = 0
    """How often the publishing loop leased it: more than once means it is resumed."""
    completion_failures: int = 0
    org_active: bool = True
    brand_active: bool = True
    texts: Mapping[str, str] = field(default_factory=dict)
    """The exact text per platform, as drafted (empty for drafts from before texts existed)."""
    language: str | None = None
    """The brand's language (BCP-47) when it said one, for platforms that tag posts with it."""
    media: tuple[MediaOfPost, ...] = ()
    """Its images or video, in order with their alt texts, given to every platform as media."""
    deadline_passed: bool = False
    """Its run is past its deadline (RunDeadlinePassed): no platform call starts any more."""
    angle_reason: str | None = None
    """Why the draft took its angle (null for drafts from before issue 22), copied to its posts."""

    def text_for(self, platform: str) -> str:
        """What to post on `platform`: its drafted text, else (an older draft) the content
        composed with its hashtags; its media go as media, never as links (issue 18)."""
        text = self.texts.get(platform)
        if text is not None:
            return text
        return post_text(self.content, self.hashtags or [])


@dataclass(frozen=True, slots=True)
class PublishAttempt:
    """The publication of a pending post on one platform: with which account, under which
    idempotency key, and how it ended (PENDING, PUBLISHED or FAILED with a reason)."""

    pending_post_id: uuid.UUID
    platform: str
    idempotency_key: str
    social_account_id: uuid.UUID | None
    status: str
    failure_reason: str | None
    failure_detail: str | None
    created_at: datetime
    external_id: str | None = None
    """Its post on the platform, when it was settled while another platform of its pending post
    was put off by a rate limit (`settled_at`: its event was written then)."""
    external_url: str | None = None
    published_at: datetime | None = None
    settled_at: datetime | None = None
    retry_at: datetime | None = None
    """When it is tried again, while a rate limit of its platform puts it off (and why)."""
    deferral_reason: str | None = None

    @property
    def recorded_failure(self) -> str:
        """The reason recorded on a FAILED attempt (whoever writes FAILED writes a reason)."""
        return cast(str, self.failure_reason)


def text_refusal(platform: str, text: str, rule: TextRule | None = None, where: str = "") -> str | None:
    """Why `platform`'s own counting rule (or `rule`, e.g. a Mastodon instance's, named by
    `where`) refuses `text` (None when it takes it): a text the platform would refuse is not sent."""
    problems = (rule or rule_for(platform)).problems(text)
    if not problems:
        return None
    return f"the text breaks {platform}'s rule{where}, not sent: {'; '.join(problems)}"
