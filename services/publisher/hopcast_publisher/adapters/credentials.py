"""The credentials of social accounts, in one place: their tokens' encryption and their OAuth
refresh.

Tokens arrive as ciphertext under the transport associated data, are decrypted on receipt
and sealed again bound to their account (associated data `social_account:<id>`), so a
stored token copied onto another account's row does not decrypt. Plaintext lives only in
memory, for one call.

`refresh_oauth_tokens` is the one OAuth 2 refresh-token grant of the adapters that speak it
(LinkedIn, Mastodon, X); Bluesky refreshes its own session instead.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.adapters.platforms.http import json_or_empty, now
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.crypto import TRANSPORT_AAD, Keyring, TokenDecryptError, owner_aad

OWNER_KIND = "social_account"

__all__ = ["AccountTokens", "TokenDecryptError", "oauth_tokens", "refresh_oauth_tokens"]


class AccountTokens:
    """Seal and open the tokens of social accounts with the service's keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def aad(account_id: uuid.UUID) -> bytes:
        return owner_aad(OWNER_KIND, str(account_id))

    def from_transport(self, ciphertext: str) -> str:
        """The plaintext of a token as upstream sent it; raises TokenDecryptError."""
        return self.keyring.decrypt(ciphertext, associated_data=TRANSPORT_AAD)

    def seal(self, account_id: uuid.UUID, plaintext: str) -> str:
        """The ciphertext to store, under the newest key, bound to the account."""
        return self.keyring.encrypt(plaintext, associated_data=self.aad(account_id))

    def reseal_from_transport(self, account_id: uuid.UUID, ciphertext: str) -> str:
        """Transport ciphertext in, stored ciphertext out: the plaintext never leaves here."""
        return self.seal(account_id, self.from_transport(ciphertext))

    def open(self, account_id: uuid.UUID, stored: str) -> str:
        """The plaintext of a stored token; raises TokenDecryptError (tampered, swapped, unknown key)."""
        return self.keyring.decrypt(stored, associated_data=self.aad(account_id))

    def needs_rotation(self, stored: str) -> bool:
        return bool(self.keyring.needs_rotation(stored))

    def rotate(self, account_id: uuid.UUID, stored: str) -> str:
        """The stored token re-encrypted under the newest key."""
        return self.keyring.reencrypt(stored, associated_data=self.aad(account_id))


# --- OAuth 2 refresh ------------------------------------------------------------------------


async def refresh_oauth_tokens(
    client: httpx.AsyncClient,
    token_url: str,
    account: AccountCredentials,
    *,
    platform: str,
    client_id: str | None,
    client_secret: str | None,
    client_auth: Literal["body", "basic"] = "body",
    needs: str = "",
) -> RefreshedTokens:
    """Exchange the account's refresh token at `token_url` (grant_type=refresh_token).

    The app's client id and secret go in the form (`client_auth="body"`: both are required,
    `needs` names the settings that hold them), or, for a public or confidential client, the
    id in the form and the secret as HTTP Basic when there is one (`"basic"`). Raises
    PublishFailure(TOKEN_INVALID) when refused."""
    assert account.refresh_token is not None
    form = {"grant_type": "refresh_token", "refresh_token": account.refresh_token}
    if client_auth == "body":
        if not client_id or not client_secret:
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, f"{platform} token refresh needs {needs}")
        response = await client.post(token_url, data={**form, "client_id": client_id, "client_secret": client_secret})
    else:
        auth = (client_id, client_secret) if client_id and client_secret else None
        response = await client.post(
            token_url, data={**form, "client_id": client_id or ""}, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
    return oauth_tokens(response, platform)


def oauth_tokens(response: httpx.Response, platform: str) -> RefreshedTokens:
    """Tokens from an OAuth 2 token endpoint's answer (access_token, refresh_token, expires_in)."""
    body = json_or_empty(response)
    access = body.get("access_token")
    if response.status_code != 200 or not isinstance(access, str):
        raise PublishFailure(
            PublishFailureReason.TOKEN_INVALID, f"{platform} refused to refresh the token ({response.status_code})"
        )
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    expires_at = now() + timedelta(seconds=int(expires_in)) if isinstance(expires_in, int | float) else None
    return RefreshedTokens(access, refresh if isinstance(refresh, str) else None, expires_at)
