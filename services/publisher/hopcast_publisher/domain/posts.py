"""What goes out on a platform: the text of a post, the key that makes its publication
idempotent, and the id of the post it becomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from hopcast_publisher.domain.publishing import MediaOfPost

# The namespace of post ids (uuid5): never change it, ids already given out are derived from it.
_POST_IDS = uuid.UUID("8b0d5f43-2a1e-4c55-9a57-5e3f0c1d7b21")


def idempotency_key(pending_post_id: uuid.UUID, platform: str) -> str:
    """One key per pending post and platform, sent with every call that could create the post."""
    return f"hopcast-{pending_post_id}-{platform.lower()}"


def post_id_for(pending_post_id: uuid.UUID, platform: str) -> uuid.UUID:
    """The post's id: the same for a pending post and platform, whoever completes it."""
    return uuid.uuid5(_POST_IDS, f"{pending_post_id}:{platform}")


@dataclass(frozen=True, slots=True)
class PublishedPost:
    """A post live on a platform, with the engagement last reported for it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    pending_post_id: uuid.UUID
    run_id: uuid.UUID
    schedule_id: uuid.UUID
    brand_profile_id: uuid.UUID
    material_id: uuid.UUID
    social_account_id: uuid.UUID
    platform: str
    angle: str
    content: str
    external_id: str
    external_url: str
    published_at: datetime
    likes: int
    comments: int
    shares: int
    impressions: int
    engagement_rate: float
    engagement_observed_at: datetime | None
    deleted_at: datetime | None
    media: tuple[MediaOfPost, ...] = ()
    """The images or video it was given, with their alt texts (issue 18)."""
    hashtags: tuple[str, ...] = ()
    """Its pending post's hashtags (issue 22; none for posts from before)."""
    angle_reason: str | None = None
    """Why its draft took its angle (issue 22; null for posts from before)."""
