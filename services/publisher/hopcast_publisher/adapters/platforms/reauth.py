"""A platform refusing an account's credentials for good, as opposed to failing for now: the
refresh token refused, the app revoked, the access token refused even after a refresh. The
publishing loop then marks the account as needing re-authorization and stops using it.

OAuth 2 error codes (RFC 6749, section 5.2) decide at a token endpoint: `invalid_grant` (the
refresh token is expired, revoked or already used) and `invalid_request` (what X answers for
such a token: "Value passed for the token was invalid"; our refresh requests are complete) are
REFRESH_REJECTED; `invalid_client` and `unauthorized_client` (the app itself refused) are
REVOKED. A 5xx, a 429 or an answer without a known code may pass: the account is left as it is.
"""

from __future__ import annotations

from hopcast_publisher.adapters.platforms.base import PublishFailure
from hopcast_shared.contract import PublishFailureReason, ReauthReason

_OAUTH_REFUSALS = {
    "invalid_grant": ReauthReason.REFRESH_REJECTED,
    "invalid_request": ReauthReason.REFRESH_REJECTED,
    "invalid_client": ReauthReason.REVOKED,
    "unauthorized_client": ReauthReason.REVOKED,
}
# Bluesky's refreshSession: the refresh JWT expired or was revoked; the account taken down.
_ATPROTO_REFUSALS = {
    "ExpiredToken": ReauthReason.REFRESH_REJECTED,
    "InvalidToken": ReauthReason.REFRESH_REJECTED,
    "AccountTakedown": ReauthReason.REVOKED,
}


class NeedsReauth(PublishFailure):
    """TOKEN_INVALID, and the account needs its owner to connect it again (`reauth` says why)."""

    def __init__(self, reauth: ReauthReason, detail: str) -> None:
        super().__init__(PublishFailureReason.TOKEN_INVALID, detail)
        self.reauth = reauth


def oauth_refusal(status: int, error: object) -> ReauthReason | None:
    """Why a token endpoint's refusal (status, its `error` field) is for good, or None."""
    if status not in (400, 401) or not isinstance(error, str):
        return ReauthReason.REVOKED if status == 401 else None
    return _OAUTH_REFUSALS.get(error, ReauthReason.REVOKED if status == 401 else None)


def atproto_refusal(status: int, error: object) -> ReauthReason | None:
    """Why a Bluesky refreshSession refusal is for good, or None."""
    if status not in (400, 401) or not isinstance(error, str):
        return None
    return _ATPROTO_REFUSALS.get(error)
