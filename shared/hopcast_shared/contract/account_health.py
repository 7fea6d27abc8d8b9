"""publisher.events about a social account's credentials, so upstream stays in step with
what the publisher learned while publishing: the tokens it refreshed itself, and an account
its owner must connect again. Their own module to keep `events.py` readable; both are
exported from `hopcast_shared.contract` like every other type.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hopcast_shared.contract.enums import Platform, ReauthReason
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.fields import LAX, Id, TokenCiphertext, UtcDatetime


class SocialAccountTokensRefreshed(EventData):
    """publisher: it refreshed an account's tokens (X and Bluesky rotate the refresh token, so
    the pair upstream holds no longer works). The ciphertexts are bound to the organization
    and the account as in SocialAccountConnected (`account_transit_aad`); tokens_issued_at is
    the publisher's time of the refresh, so upstream can send the pair back in a
    SocialAccountUpdated without it counting as older."""

    social_account_id: Id
    access_token: TokenCiphertext = Field(repr=False)
    refresh_token: TokenCiphertext | None = Field(default=None, repr=False)
    token_expires_at: UtcDatetime | None = None
    tokens_issued_at: UtcDatetime


class SocialAccountNeedsReauth(EventData):
    """publisher: refreshing an account's tokens failed for good; the account is not used
    until a SocialAccountUpdated (or ...Connected) brings a newer pair. Emitted once per
    failure, not once per post."""

    social_account_id: Id
    platform: Annotated[Platform, LAX]
    reason: Annotated[ReauthReason, LAX]
