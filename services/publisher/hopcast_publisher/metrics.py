"""The publisher's own metrics, beside the kernel's."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_COMPLETED = Counter("hopcast_publisher_runs_completed_total", "Runs the publisher ended, by outcome", ["outcome"])
PLATFORM_RESULTS = Counter(
    "hopcast_publisher_platform_results_total", "Per-platform publication results", ["platform", "result"]
)
POSTS_PUBLISHED = Counter("hopcast_publisher_posts_published_total", "Posts published, per platform", ["platform"])
PUBLISH_SECONDS = Histogram(
    "hopcast_publisher_publish_batch_seconds",
    "Time from lease to completion of one batch of pending posts",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DEFERRALS = Counter(
    "hopcast_publisher_deferrals_total",
    "Platform calls put off until the platform's limit resets (PostPublishDeferred), by reason",
    ["platform", "reason"],
)
RESUMED = Counter("hopcast_publisher_resumed_total", "Pending posts taken over after a lease ran out")
LEASES_LOST = Counter(
    "hopcast_publisher_leases_lost_total",
    "Platform calls not sent because their pending post's lease was lost (claimed by another worker, or"
    " not renewed in time); the post is left to whoever claims it next",
)
TOKENS_REFRESHED = Counter("hopcast_publisher_tokens_refreshed_total", "Tokens refreshed and stored", ["platform"])
ENGAGEMENT_UPDATES = Counter("hopcast_publisher_engagement_updates_total", "EngagementReported applied to posts")
COMPLETION_FAILURES = Counter(
    "hopcast_publisher_completion_failures_total",
    "Pending posts whose completion failed, by what followed: retried (later, alone), given_up (ended"
    " PUBLISH_FAILED with its events), abandoned (ended PUBLISH_FAILED without events: see the logs)",
    ["result"],
)
ACCOUNTS_NEEDING_REAUTH = Counter(
    "hopcast_publisher_accounts_needing_reauth_total",
    "Accounts marked as needing re-authorization (refresh failed for good), by reason",
    ["reason"],
)
API_VERSION_RETIRED = Counter(
    "hopcast_publisher_api_version_retired_total",
    "Platform calls refused because the platform no longer serves the API version we call (426 or"
    " its own retired-version error): the platform failed API_VERSION_RETIRED; bump the version setting",
    ["platform", "version"],
)
API_VERSION_AGE_DAYS = Gauge(
    "hopcast_publisher_api_version_age_days",
    "Days since the configured platform API version was released, set at start-up (absent when unknown)",
    ["api", "version"],
)
API_VERSION_STALE = Gauge(
    "hopcast_publisher_api_version_stale",
    "1 when the configured platform API version is older than eleven months (the platform retires it"
    " about a year after release), else 0; set at start-up",
    ["api", "version"],
)
DRAFTS_EXPIRED = Counter(
    "hopcast_publisher_drafts_expired_total",
    "Manual-mode drafts ended EXPIRED: nobody approved or rejected them before their approval deadline",
)
LATE_DECISIONS = Counter(
    "hopcast_publisher_late_decisions_total",
    "Decisions on a draft that arrived after it expired (changed nothing), by kind: approved, rejected, edited",
    ["decision"],
)
