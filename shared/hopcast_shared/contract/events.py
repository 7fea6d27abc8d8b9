"""Every event of the contract (DESIGN.md "Inbound events" and "Internal and outbound
events") as a strict, frozen pydantic model of its `data`.

Conventions, the same for every type:

- The class name is the CloudEvents `type` (see `registry.py` for names and topics).
- Ids are UUIDs, times RFC 3339 with an offset and normalized to UTC, amounts whole credits.
- Unknown fields are ignored; a missing field, a wrong JSON type ("5" for an int, 5 for a
  string, true for an int) or an out-of-range value is rejected.
- A field the contract calls nullable may be omitted: absent means null. Other fields
  are required unless a default is documented on the field (contract defaults:
  `max_uses` 1, `missed_run_policy` ONCE; chosen defaults: `is_active` true,
  `generation_mode` autopilot, `material_strategy` round_robin, `is_default` false).
- `...Created`/`...Updated` (and `SocialAccountConnected`/`...Updated`) carry the whole
  new state, not a patch: an omitted defaulted field takes its default.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from hopcast_shared.contract.enums import (
    Angle,
    DebitRejectionReason,
    GenerationMode,
    LedgerAction,
    MaterialStrategy,
    MaterialType,
    MissedRunPolicy,
    Plan,
    Platform,
    PublishFailureReason,
    RefundReason,
    RunOutcome,
    SkipReason,
)
from hopcast_shared.contract.fields import (
    LAX,
    MAX_BODY,
    MAX_ENGAGEMENT_RATE,
    MAX_SHORT_TEXT,
    MAX_TIMES_PER_DAY,
    UNIQUE,
    Balance,
    Body,
    ContractModel,
    Count,
    Credits,
    Hashtags,
    IanaTimezone,
    Id,
    LanguageTag,
    LocalTimeOfDay,
    Name,
    Percentage,
    Platforms,
    PlatformTexts,
    PlatformUrl,
    ShortText,
    Similarity,
    TokenCiphertext,
    Url,
    UtcDatetime,
    Words,
    unique_items,
)
from hopcast_shared.contract.media import LeavesPlatformsOut, LeftOut, Media, OlderMediaUrls, ReadsMediaUrls


class EventData(ContractModel):
    """Base of every event's data model."""


# --- Inbound events (upstream.events) ---------------------------------------------------


class OrganizationCreated(EventData):
    """A tenant was created. organization_id must equal the envelope's organizationid."""

    organization_id: Id
    name: Name


class OrganizationDeleted(EventData):
    """Soft delete of a tenant: nothing of it is selected, debited or published."""

    organization_id: Id


class OrganizationRestored(EventData):
    organization_id: Id


class ContentPillar(ContractModel):
    """A theme of the brand and the share of posts it should get (0 to 100 percent)."""

    name: Name
    percentage: Percentage


class LanguageRules(ContractModel):
    """How the brand writes. The three styles are free text (e.g. `moderate`, `camelCase`)."""

    words_to_use: Words
    words_to_avoid: Words
    emoji_usage: ShortText
    hashtag_style: ShortText
    cta_style: ShortText


class _BrandProfileState(EventData):
    brand_profile_id: Id
    name: Name
    timezone: IanaTimezone
    content_pillars: Annotated[list[ContentPillar], Field(max_length=20)]
    """Distinct names; percentages sum to at most 100 (the rest is unassigned)."""
    tone: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]], Field(max_length=20)]
    target_audience: ShortText
    language_rules: LanguageRules
    default_hashtags: Hashtags
    language: LanguageTag | None = None
    """The language the brand posts in (an addition to DESIGN.md, see docs/contract.md): the
    publisher tags its posts with it where a platform records one (Bluesky's `langs`)."""

    @model_validator(mode="after")
    def _pillars_add_up(self) -> Self:
        names = [p.name.casefold() for p in self.content_pillars]
        if len(set(names)) != len(names):
            raise PydanticCustomError("unique_pillars", "content_pillars: names must be unique")
        # A small tolerance, so 33.3 + 33.3 + 33.4 is 100.
        if sum(p.percentage for p in self.content_pillars) > 100.0 + 1e-9:
            raise PydanticCustomError("pillars_over_100", "content_pillars: percentages sum to more than 100")
        return self


class BrandProfileCreated(_BrandProfileState):
    """A brand profile and its voice (the whole state)."""


class BrandProfileUpdated(_BrandProfileState):
    """A brand profile's new state (the whole state, not a patch)."""


class BrandProfileDeleted(EventData):
    brand_profile_id: Id


class BrandProfileRestored(EventData):
    brand_profile_id: Id


class _SocialAccountState(EventData):
    social_account_id: Id
    platform: Annotated[Platform, LAX]
    handle: Name
    external_account_id: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    """The platform's own id (a DID on Bluesky); null when unknown."""
    api_base_url: PlatformUrl | None = None
    """The instance (MASTODON, required there) or PDS (BLUESKY, optional); null elsewhere.
    https and public addresses only: anything else is refused (dead-lettered)."""
    access_token: TokenCiphertext = Field(repr=False)
    refresh_token: TokenCiphertext | None = Field(default=None, repr=False)
    token_expires_at: UtcDatetime | None = None
    tokens_issued_at: UtcDatetime | None = None
    """When the pair was issued; a pair older than the stored one never replaces it."""
    is_active: bool = True
    """Defaults to true: a connected account is usable unless said otherwise."""

    @model_validator(mode="after")
    def _mastodon_has_instance(self) -> Self:
        # Mastodon has no central instance: without one the account cannot be used.
        if self.platform is Platform.MASTODON and self.api_base_url is None:
            raise PydanticCustomError("instance_required", "api_base_url: required for MASTODON accounts")
        return self


class SocialAccountConnected(_SocialAccountState):
    """An OAuth-connected account; tokens arrive as ciphertext, never plaintext."""


class SocialAccountUpdated(_SocialAccountState):
    """An account's new state, e.g. refreshed tokens (the whole state, not a patch)."""


class SocialAccountDeleted(EventData):
    social_account_id: Id


class SocialAccountRestored(EventData):
    social_account_id: Id


class BrandAccountLinked(EventData):
    """Links a brand to an account (N:M), as an upsert. is_default defaults to false."""

    brand_profile_id: Id
    social_account_id: Id
    is_default: bool = False


class BrandAccountUnlinked(EventData):
    brand_profile_id: Id
    social_account_id: Id


class MaterialSubmitted(EventData, ReadsMediaUrls):
    """Source material for posts.

    A material has a non-blank body or at least one media item (an older producer's
    `media_urls` are read as media); IMAGE and VIDEO need one. max_uses defaults to 1; null: unlimited.
    """

    material_id: Id
    brand_profile_id: Id
    type: Annotated[MaterialType, LAX]
    title: Annotated[str, StringConstraints(max_length=500)] | None = None
    body: Body
    media: Media = Field(default_factory=list)
    media_urls: OlderMediaUrls = Field(default_factory=list, exclude=True)
    content_pillar: Name | None = None
    max_uses: Annotated[int, Field(ge=1, le=1_000_000)] | None = 1

    @model_validator(mode="after")
    def _has_content(self) -> Self:
        if self.type in (MaterialType.IMAGE, MaterialType.VIDEO) and not self.media:
            raise PydanticCustomError("media_required", "media: IMAGE and VIDEO materials need an image or video")
        if not self.body.strip() and not self.media:
            raise PydanticCustomError("empty_material", "body: empty, and no media either")
        return self


class MaterialArchived(EventData):
    """The material is kept but never selected again."""

    material_id: Id


class MaterialDeleted(EventData):
    material_id: Id


class MaterialRestored(EventData):
    material_id: Id


class PostDeleted(EventData):
    """A published post hidden from analytics, selection weights and angle learning."""

    post_id: Id


class PostRestored(EventData):
    """A deleted post counted again."""

    post_id: Id


class _ScheduleState(EventData):
    schedule_id: Id
    brand_profile_id: Id
    timezone: IanaTimezone
    times: Annotated[
        list[LocalTimeOfDay],
        Field(min_length=1, max_length=MAX_TIMES_PER_DAY, json_schema_extra=UNIQUE),
        AfterValidator(unique_items),
    ]
    """Local `HH:MM` times, 1 to 10 distinct (at most 10 runs a day)."""
    days_of_week: Annotated[
        list[Annotated[int, Field(ge=0, le=6)]],
        Field(min_length=1, max_length=7, json_schema_extra=UNIQUE),
        AfterValidator(unique_items),
    ]
    """Distinct days, 0 = Sunday to 6 = Saturday."""
    platforms: Platforms
    material_strategy: Annotated[MaterialStrategy, LAX] = MaterialStrategy.ROUND_ROBIN
    generation_mode: Annotated[GenerationMode, LAX] = GenerationMode.AUTOPILOT
    missed_run_policy: Annotated[MissedRunPolicy, LAX] = MissedRunPolicy.ONCE
    approval_ttl_minutes: Annotated[int, Field(ge=1, le=43_200)] = 2_880  # manual mode: docs/contract.md
    is_active: bool = True


class ScheduleCreated(_ScheduleState):
    """A recurring schedule: local times on days of the week in its IANA time zone."""


class ScheduleUpdated(_ScheduleState):
    """A schedule's new state (the whole state, not a patch)."""


class SchedulePaused(EventData):
    schedule_id: Id


class ScheduleResumed(EventData):
    schedule_id: Id


class ScheduleDeleted(EventData):
    schedule_id: Id


class ScheduleTriggerRequested(EventData):
    """Post now: one run of the schedule, at once."""

    schedule_id: Id


class PendingPostApproved(EventData):
    """Manual generation mode: the drafted post may be published; with `texts`, as the
    reviewer edited it, once content has checked the edit (docs/contract.md)."""

    pending_post_id: Id
    texts: PlatformTexts = Field(default_factory=dict)


class PendingPostRejected(EventData):
    """Manual generation mode: the drafted post is dropped and its debit refunded."""

    pending_post_id: Id


class SubscriptionActivated(EventData):
    """A subscription period began: its plan's credits replace the previous period's."""

    subscription_id: Id
    plan: Annotated[Plan, LAX]
    credits_total: Credits
    period_start: UtcDatetime
    period_end: UtcDatetime

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        if self.period_end <= self.period_start:
            raise PydanticCustomError("period_order", "period_end: must be after period_start")
        return self


class CreditsGranted(EventData):
    """A top-up, kept until used. grant_id is the idempotency key; reason is free text."""

    grant_id: Id
    amount: Credits
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class EngagementReported(EventData):
    """Engagement counters of a published post as observed on the platform."""

    post_id: Id
    likes: Count
    comments: Count
    shares: Count
    impressions: Count
    observed_at: UtcDatetime


# --- Internal and outbound events -------------------------------------------------------


class ScheduleDue(EventData):
    """scheduler: a run of a schedule is due; run_id is the saga's correlation id."""

    run_id: Id
    schedule_id: Id
    brand_profile_id: Id
    due_at: UtcDatetime
    platforms: Platforms
    target_pillar: Name | None = None
    deadline: UtcDatetime | None = None
    """When the run times out unless it ended (an addition: docs/contract.md); content does
    not draft a run whose deadline has passed. Absent in events from before it."""


class PendingPostCreated(EventData, ReadsMediaUrls, LeavesPlatformsOut):
    """content: a post was drafted for a run.

    max_similarity is the highest cosine similarity to the organization's posts of the
    last 30 days (-1 to 1; 0 when there are none).
    """

    pending_post_id: Id
    run_id: Id
    schedule_id: Id
    brand_profile_id: Id
    material_id: Id
    due_at: UtcDatetime
    """The run's due time, from ScheduleDue (an addition to DESIGN.md: every service that
    ends a run emits ScheduleRunCompleted, which needs it; see docs/contract.md)."""
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
    texts: PlatformTexts = Field(default_factory=dict)
    """The exact text to post per platform (docs/contract.md); absent in older events."""
    hashtags: Hashtags
    media: Media = Field(default_factory=list)
    media_urls: OlderMediaUrls = Field(default_factory=list, exclude=True)
    platforms: Platforms
    platforms_left_out: LeftOut = Field(default_factory=list)
    angle: Annotated[Angle, LAX]
    angle_reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SHORT_TEXT)]
    max_similarity: Similarity
    requires_approval: bool
    approval_deadline: UtcDatetime | None = None  # manual mode: drafted + the TTL (docs/contract.md)
    deadline: UtcDatetime | None = None
    """The run's deadline as ScheduleDue said (an addition: docs/contract.md). Without a
    reviewer, billing does not debit and the publisher does not start a post past it, even
    before RunDeadlinePassed reaches them; absent in events from before it."""


class ScheduleRunSkipped(EventData):
    """content: the run produced no post."""

    run_id: Id
    schedule_id: Id
    brand_profile_id: Id
    reason: Annotated[SkipReason, LAX]


class CreditsDebited(EventData):
    """billing: the pending post's credits were taken, once. action is a spending action."""

    pending_post_id: Id
    run_id: Id
    amount: Credits
    action: Annotated[LedgerAction, LAX]
    balance_after: Balance

    @model_validator(mode="after")
    def _action_spends(self) -> Self:
        if self.action.adds_credits:
            raise PydanticCustomError("debit_action", "action: must be an action that spends credits")
        return self


class CreditsDebitRejected(EventData):
    """billing: not enough credits (or no subscription, or a deleted organization); nothing was debited."""

    pending_post_id: Id
    run_id: Id
    requested: Credits
    available: Balance
    reason: Annotated[DebitRejectionReason, LAX]


class CreditsRefunded(EventData):
    """billing: credits of a pending post came back."""

    pending_post_id: Id
    run_id: Id
    amount: Credits
    balance_after: Balance
    reason: Annotated[RefundReason, LAX]


class PostPublished(EventData):
    """publisher: the post is live on one platform (one event per platform)."""

    post_id: Id
    pending_post_id: Id
    run_id: Id
    material_id: Id
    schedule_id: Id
    brand_profile_id: Id
    social_account_id: Id
    platform: Annotated[Platform, LAX]
    angle: Annotated[Angle, LAX]
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    external_url: Url
    published_at: UtcDatetime
    hashtags: Hashtags = Field(default_factory=list)
    """The pending post's hashtags (issue 22; optional, absent in older events)."""
    media: Media = Field(default_factory=list)
    """The pending post's media with alt texts (issue 22; optional, absent in older events)."""
    angle_reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SHORT_TEXT)] | None = None
    """Why the draft took its angle (issue 22; optional, absent in older events)."""


class PostPublishFailed(EventData):
    """publisher: publishing on one platform failed for good. detail never holds a token."""

    pending_post_id: Id
    run_id: Id
    platform: Annotated[Platform, LAX]
    reason: Annotated[PublishFailureReason, LAX]
    detail: ShortText


class ScheduleRunCompleted(EventData):
    """How a run ended; exactly one per run."""

    run_id: Id
    schedule_id: Id
    brand_profile_id: Id
    outcome: Annotated[RunOutcome, LAX]
    due_at: UtcDatetime
    completed_at: UtcDatetime


class EngagementUpdated(EventData):
    """publisher: a post's latest engagement, with the angle it was written from."""

    post_id: Id
    brand_profile_id: Id
    platform: Annotated[Platform, LAX]
    angle: Annotated[Angle, LAX]
    likes: Count
    comments: Count
    shares: Count
    impressions: Count
    engagement_rate: Annotated[float, Field(ge=0.0, le=MAX_ENGAGEMENT_RATE, allow_inf_nan=False)]
    """(likes + comments + shares) / impressions as computed by the publisher, 0 without impressions."""


class CreditsUsage(EventData):
    """billing: one change of a balance, for dashboards.

    amount is the magnitude; `action.adds_credits` says whether the balance rose or fell.
    period_end is the current subscription period's end, null without a subscription.
    """

    action: Annotated[LedgerAction, LAX]
    amount: Credits
    balance_after: Balance
    period_end: UtcDatetime | None = None
