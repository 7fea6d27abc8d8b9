"""Which token pair an account keeps (`domain.token_pairs`), and which refusals of a platform
are for good (`adapters.platforms.reauth`): pure decisions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hopcast_publisher.adapters.platforms.reauth import NeedsReauth, atproto_refusal, oauth_refusal
from hopcast_publisher.domain.token_pairs import PairVerdict, judge_arriving_pair
from hopcast_shared.contract import PublishFailureReason, ReauthReason

T = datetime(2026, 6, 1, tzinfo=UTC)
EARLIER, LATER = T - timedelta(microseconds=1), T + timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("stored", "arriving", "verdict"),
    [
        (None, None, PairVerdict(take=True, clears_reauth=True)),  # no dates anywhere: as before
        (None, T, PairVerdict(take=True, clears_reauth=True)),  # the first dated pair
        (T, None, PairVerdict(take=False, clears_reauth=False)),  # unknown age never beats a date
        (T, EARLIER, PairVerdict(take=False, clears_reauth=False)),  # older: ignored
        (T, T, PairVerdict(take=True, clears_reauth=False)),  # the same instant: an echo or redelivery
        (T, LATER, PairVerdict(take=True, clears_reauth=True)),  # newer: a re-authorization
    ],
)
def test_an_older_pair_never_replaces_a_newer_one(
    stored: datetime | None, arriving: datetime | None, verdict: PairVerdict
) -> None:
    assert judge_arriving_pair(stored, arriving) == verdict


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, "invalid_grant", ReauthReason.REFRESH_REJECTED),
        (400, "invalid_request", ReauthReason.REFRESH_REJECTED),  # X, for a used or revoked token
        (401, "invalid_client", ReauthReason.REVOKED),
        (400, "unauthorized_client", ReauthReason.REVOKED),
        (401, None, ReauthReason.REVOKED),  # the app's own credentials refused
        (400, "invalid_scope", None),
        (400, None, None),
        (429, "invalid_grant", None),  # a 429 or 5xx passes: never a reason to give up
        (503, None, None),
        (200, None, None),  # an answer without a token is no verdict on the account
    ],
)
def test_which_token_endpoint_refusals_are_for_good(status: int, error: str | None, reason: ReauthReason) -> None:
    assert oauth_refusal(status, error) is reason


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, "ExpiredToken", ReauthReason.REFRESH_REJECTED),
        (400, "InvalidToken", ReauthReason.REFRESH_REJECTED),
        (400, "AccountTakedown", ReauthReason.REVOKED),
        (400, "InvalidRequest", None),
        (502, "ExpiredToken", None),
    ],
)
def test_which_bluesky_session_refusals_are_for_good(status: int, error: str, reason: ReauthReason | None) -> None:
    assert atproto_refusal(status, error) is reason


def test_a_refusal_for_good_fails_the_post_as_token_invalid_and_hides_tokens() -> None:
    failure = NeedsReauth(ReauthReason.UNAUTHORIZED, "X refused the token (401) after a refresh")
    assert failure.reason is PublishFailureReason.TOKEN_INVALID and failure.reauth is ReauthReason.UNAUTHORIZED
