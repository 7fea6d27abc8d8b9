"""The contract's enumerations (DESIGN.md): platforms, angles, strategies, plans, reasons and
outcomes, each value the text it travels as."""

from __future__ import annotations

from enum import StrEnum


class Platform(StrEnum):
    FACEBOOK = "FACEBOOK"
    TWITTER = "TWITTER"
    LINKEDIN = "LINKEDIN"
    INSTAGRAM = "INSTAGRAM"
    YOUTUBE = "YOUTUBE"
    REDDIT = "REDDIT"
    TIKTOK = "TIKTOK"
    THREADS = "THREADS"
    BLUESKY = "BLUESKY"
    MASTODON = "MASTODON"


class Angle(StrEnum):
    PRODUCT_FOCUS = "PRODUCT_FOCUS"
    USER_BENEFIT = "USER_BENEFIT"
    STORYTELLING = "STORYTELLING"
    EDUCATIONAL = "EDUCATIONAL"
    SOCIAL_PROOF = "SOCIAL_PROOF"
    PROMOTIONAL = "PROMOTIONAL"


class MaterialType(StrEnum):
    TEXT = "TEXT"
    URL = "URL"
    FILE = "FILE"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class MaterialStrategy(StrEnum):
    """How content picks a brand's next material."""

    ROUND_ROBIN = "round_robin"  # fewest uses, then least recently used
    RANDOM = "random"
    WEIGHTED = "weighted"  # weighted by engagement
    PILLAR_BALANCED = "pillar_balanced"  # toward the brand's pillar percentages


class GenerationMode(StrEnum):
    AUTOPILOT = "autopilot"
    MANUAL = "manual"  # nothing is published before PendingPostApproved


class MissedRunPolicy(StrEnum):
    """What the scheduler does with runs more than 10 minutes late."""

    SKIP = "SKIP"  # drop them
    ONCE = "ONCE"  # run once for all of them
    ALL = "ALL"  # run each of them, at most 3


class Plan(StrEnum):
    STARTER = "STARTER"
    GROWTH = "GROWTH"
    BUSINESS = "BUSINESS"


class LedgerAction(StrEnum):
    """What a row of the credit ledger is for."""

    GENERATE = "GENERATE"
    GENERATE_TRENDING = "GENERATE_TRENDING"
    REWRITE = "REWRITE"
    PUBLISH = "PUBLISH"
    ANALYTICS = "ANALYTICS"
    TOPUP = "TOPUP"
    SUBSCRIPTION = "SUBSCRIPTION"
    REFUND = "REFUND"

    @property
    def adds_credits(self) -> bool:
        """True for the actions that raise the balance (TOPUP, SUBSCRIPTION, REFUND)."""
        return self in _CREDITING_ACTIONS


_CREDITING_ACTIONS = frozenset({LedgerAction.TOPUP, LedgerAction.SUBSCRIPTION, LedgerAction.REFUND})


class SkipReason(StrEnum):
    NO_READY_MATERIAL = "NO_READY_MATERIAL"
    ALL_CANDIDATES_DUPLICATE = "ALL_CANDIDATES_DUPLICATE"
    BRAND_INACTIVE = "BRAND_INACTIVE"
    ORGANIZATION_INACTIVE = "ORGANIZATION_INACTIVE"
    # An addition to the contract (docs/contract.md, issue 18): no selectable material has what
    # any of the run's platforms needs (Instagram an image or video...); nothing is debited.
    ALL_PLATFORMS_LEFT_OUT = "ALL_PLATFORMS_LEFT_OUT"


class LeftOutReason(StrEnum):
    """Why content left a run's platform out of its pending post (PendingPostCreated.platforms_left_out)."""

    MEDIA_REQUIRED = "MEDIA_REQUIRED"  # the platform posts only an image or a video; the draft has none
    VIDEO_REQUIRED = "VIDEO_REQUIRED"  # the platform posts only a video; the draft has none


class DebitRejectionReason(StrEnum):
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    NO_SUBSCRIPTION = "NO_SUBSCRIPTION"
    # An addition to the contract (docs/contract.md): the organization is deleted; nothing is debited.
    ORGANIZATION_INACTIVE = "ORGANIZATION_INACTIVE"
    # An addition (docs/contract.md): the run's deadline passed before the debit; nothing is debited.
    TIMED_OUT = "TIMED_OUT"


class RefundReason(StrEnum):
    """Why credits came back (the contract leaves this open; docs/contract.md lists these)."""

    PUBLISH_FAILED = "PUBLISH_FAILED"  # the failed platforms' share, on PostPublishFailed
    PENDING_POST_REJECTED = "PENDING_POST_REJECTED"  # the whole debit, on PendingPostRejected
    PENDING_POST_EXPIRED = "PENDING_POST_EXPIRED"  # the whole debit, on PendingPostExpired
    RUN_TIMED_OUT = "RUN_TIMED_OUT"  # what is left of the debit of a run ended TIMED_OUT


class PublishFailureReason(StrEnum):
    NO_ACCOUNT_FOR_PLATFORM = "NO_ACCOUNT_FOR_PLATFORM"
    TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 (a reason, not a password)
    PLATFORM_REJECTED = "PLATFORM_REJECTED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    API_VERSION_RETIRED = "API_VERSION_RETIRED"  # the platform no longer serves the API version we call
    EGRESS_REFUSED = "EGRESS_REFUSED"  # the platform URL is not https or not public: nothing was sent
    # An addition to the contract (docs/contract.md): a call may have published the post and the
    # platform cannot be asked (LinkedIn without r_member_social); not retried, never posted twice.
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    # A media file breaks the platform's limits (size, type, count, dimensions) or the platform
    # refused it: checked before any upload; the detail names the file, the limit and the value.
    MEDIA_REJECTED = "MEDIA_REJECTED"
    TIMED_OUT = "TIMED_OUT"  # the run's deadline passed before this platform was called


class RunOutcome(StrEnum):
    """How a schedule run ended; exactly one per run, on ScheduleRunCompleted."""

    PUBLISHED = "PUBLISHED"
    PARTIALLY_PUBLISHED = "PARTIALLY_PUBLISHED"
    SKIPPED_DUPLICATE = "SKIPPED_DUPLICATE"
    NO_MATERIAL = "NO_MATERIAL"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    PUBLISH_FAILED = "PUBLISH_FAILED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"  # manual mode: no decision before the approval deadline
    BRAND_INACTIVE = "BRAND_INACTIVE"
    ORGANIZATION_INACTIVE = "ORGANIZATION_INACTIVE"
    # An addition (docs/contract.md): ScheduleRunSkipped ALL_PLATFORMS_LEFT_OUT; nothing debited.
    ALL_PLATFORMS_LEFT_OUT = "ALL_PLATFORMS_LEFT_OUT"
    TIMED_OUT = "TIMED_OUT"  # still open at its deadline (RunDeadlinePassed)


class ReauthReason(StrEnum):
    """Why a social account needs its owner to connect it again (SocialAccountNeedsReauth)."""

    REFRESH_REJECTED = "REFRESH_REJECTED"
    """The platform refused the refresh token (OAuth `invalid_grant`: expired, revoked or reused)."""
    REVOKED = "REVOKED"
    """The platform refused the app itself (OAuth `invalid_client`, `unauthorized_client`)."""
    UNAUTHORIZED = "UNAUTHORIZED"
    """The platform refused the access token (401) after a refresh, or with no refresh token."""
