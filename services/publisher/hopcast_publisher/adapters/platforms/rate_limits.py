"""What each platform says about an account's limits, read from its answers, and the deferral
an adapter raises instead of failing when a limit holds a call past what it may wait.

Documented headers (every answer carries them unless said otherwise):

- X: `x-rate-limit-limit/-remaining/-reset` (the endpoint's 15-minute window, reset in epoch
  seconds), and for posting the 24-hour caps `x-user-limit-24hour-*` (the user's) and
  `x-app-limit-24hour-*` (the app's), same form; a 429 carries the ones used up.
- Mastodon: `X-RateLimit-Limit/-Remaining/-Reset`, the reset an ISO 8601 time (300 calls per
  5 minutes per account by default; instances differ).
- Bluesky PDS (atproto xrpc-server): `RateLimit-Limit/-Remaining/-Reset` (epoch seconds) and
  `RateLimit-Policy`; a 429 when used up.
- LinkedIn: no rate-limit headers; application and member limits per 24 hours that reset
  at midnight UTC, answered with a 429 (rarely a 429 to protect its infrastructure, which
  passes soon). Retry-After where any platform sends it.
- Meta's Graph API (Facebook, Instagram, Threads; developers.facebook.com/docs/graph-api/
  overview/rate-limiting): `X-App-Usage` and `X-Page-Usage` (`{"call_count", "total_cputime",
  "total_time"}`, percentages of a rolling hour; 100 is throttled, and no reset is given, X-Page-
  Usage may add `estimated_time_to_regain_access` in minutes) and `X-Business-Use-Case-Usage`
  (`{"<id>": [{"type", "call_count", ..., "estimated_time_to_regain_access"}]}`, minutes). A
  throttled call is answered 400/403 with error code 4, 17, 32, 613 or 80001-80014, not 429;
  the publishing caps (`content_publishing_limit`) are read by the adapters themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hopcast_shared.contract import DeferralReason
from hopcast_shared.redact import redact_text


@dataclass(frozen=True, order=True)
class RateLimit:
    """The account may not call again before `reset_at` (a wall-clock time, UTC)."""

    reset_at: datetime
    reason: DeferralReason = DeferralReason.RATE_LIMITED


class PublishDeferred(Exception):
    """Not a failure: the platform's limit holds this call until `retry_at`; publish again
    then (with the same idempotency key, asking the platform first whether it exists)."""

    def __init__(self, retry_at: datetime, reason: DeferralReason, detail: str, *, maybe_sent: bool = True) -> None:
        self.retry_at = retry_at
        self.reason = reason
        self.detail = redact_text(detail)[:1000]
        # Whether a call that may have created the post went out before this (an unknown
        # outcome): only then is the platform asked first at the retry. A 429 creates nothing.
        self.maybe_sent = maybe_sent
        super().__init__(f"{reason.value} until {retry_at.isoformat()}: {self.detail}")


def _epoch(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC) if value else None
    except (ValueError, OverflowError, OSError):
        return None


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _used_up(
    headers: Mapping[str, str], prefix: str, parse: Callable[[str | None], datetime | None] = _epoch
) -> datetime | None:
    """The reset of a `<prefix>-remaining: 0` window, else None."""
    if (headers.get(f"{prefix}-remaining") or "").strip() != "0":
        return None
    return parse(headers.get(f"{prefix}-reset"))


def latest(*limits: RateLimit | None) -> RateLimit | None:
    """The limit that holds longest (a daily cap over a 15-minute window ending sooner)."""
    known = [limit for limit in limits if limit is not None]
    return max(known) if known else None


def x_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    window = _used_up(headers, "x-rate-limit")
    user_day = _used_up(headers, "x-user-limit-24hour")
    app_day = _used_up(headers, "x-app-limit-24hour")
    return latest(
        RateLimit(window) if window else None,
        RateLimit(user_day, DeferralReason.DAILY_CAP) if user_day else None,
        RateLimit(app_day, DeferralReason.DAILY_CAP) if app_day else None,
    )


def mastodon_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    reset = _used_up(headers, "x-ratelimit", _iso)
    return RateLimit(reset) if reset else None


def bluesky_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    reset = _used_up(headers, "ratelimit")
    return RateLimit(reset) if reset else None


def next_utc_midnight(now: datetime) -> datetime:
    """When LinkedIn's daily limits reset."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


GRAPH_USAGE_HEADERS = ("x-app-usage", "x-page-usage", "x-ad-account-usage")
_GRAPH_USAGE_FIELDS = ("call_count", "total_cputime", "total_time")


def _json_object(value: str | None) -> dict[str, object]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _graph_usage_reset(usage: Mapping[str, object], now: datetime, unannounced_s: float) -> datetime | None:
    """When one usage object (X-App-Usage's, one entry of X-Business-Use-Case-Usage) is free
    again: its estimated_time_to_regain_access (minutes) when it gives one above 0, else, when a
    percentage reached 100, `unannounced_s` from now; None while it is under its limit."""
    regain = usage.get("estimated_time_to_regain_access")
    if isinstance(regain, int | float) and not isinstance(regain, bool) and regain > 0:
        return now + timedelta(minutes=float(regain))
    percents = [usage.get(f) for f in _GRAPH_USAGE_FIELDS]
    used_up = any(isinstance(p, int | float) and not isinstance(p, bool) and p >= 100 for p in percents)
    return now + timedelta(seconds=unannounced_s) if used_up else None


def graph_rate_limit(headers: Mapping[str, str], now: datetime, unannounced_s: float) -> RateLimit | None:
    """The latest reset the Graph API's usage headers announce, if any of them is used up."""
    resets: list[datetime | None] = [
        _graph_usage_reset(_json_object(headers.get(name)), now, unannounced_s) for name in GRAPH_USAGE_HEADERS
    ]
    for entries in _json_object(headers.get("x-business-use-case-usage")).values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                resets.append(_graph_usage_reset(entry, now, unannounced_s))
    return latest(*(RateLimit(reset) for reset in resets if reset is not None))
