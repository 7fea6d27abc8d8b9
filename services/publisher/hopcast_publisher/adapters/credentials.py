"""The credentials of social accounts, in one place: their tokens' encryption and their OAuth
refresh.

Tokens arrive as ciphertext bound to their organization and account (`account_transit_aad`:
one moved to another account or organization does not open), are decrypted on receipt and
sealed again bound to their account (associated data `social_account:<id>`), so a stored
token copied onto another account's row does not decrypt either. Tokens leave (in
SocialAccountTokensRefreshed) bound as they came. Plaintext lives only in memory, for one call.

The OAuth 2 refresh itself is the platforms' (adapters/platforms/oauth.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from hopcast_publisher import metrics
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PlatformAdapter,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth
from hopcast_publisher.domain.accounts import SocialAccount
from hopcast_shared.crypto import Keyring, TokenDecryptError, account_transit_aad, key_id_of, owner_aad

log = logging.getLogger(__name__)

OWNER_KIND = "social_account"

__all__ = [
    "AccountTokens",
    "OpenCredentials",
    "TokenDecryptError",
]


class AccountTokens:
    """Seal and open the tokens of social accounts with the service's keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def aad(account_id: uuid.UUID) -> bytes:
        return owner_aad(OWNER_KIND, str(account_id))

    def from_transit(self, organization_id: uuid.UUID, account_id: uuid.UUID, ciphertext: str) -> str:
        """The plaintext of a token as an event carried it, bound to this organization and
        account; raises TokenDecryptError (another account's or organization's, tampered, or
        under a key this service lacks: `holds_key` tells that one apart)."""
        return self.keyring.decrypt(ciphertext, associated_data=account_transit_aad(organization_id, account_id))

    def for_transit(self, organization_id: uuid.UUID, account_id: uuid.UUID, plaintext: str) -> str:
        """A token as an event carries it: under the newest key, bound to its organization and account."""
        return self.keyring.encrypt(plaintext, associated_data=account_transit_aad(organization_id, account_id))

    def holds_key(self, ciphertext: str) -> bool:
        """Whether the keyring has the key a ciphertext names."""
        try:
            return key_id_of(ciphertext) in self.keyring.key_ids
        except TokenDecryptError:
            return False

    def seal(self, account_id: uuid.UUID, plaintext: str) -> str:
        """The ciphertext to store, under the newest key, bound to the account."""
        return self.keyring.encrypt(plaintext, associated_data=self.aad(account_id))

    def reseal_from_transit(self, organization_id: uuid.UUID, account_id: uuid.UUID, ciphertext: str) -> str:
        """A token in transit in, stored ciphertext out: the plaintext never leaves here."""
        return self.seal(account_id, self.from_transit(organization_id, account_id, ciphertext))

    def open(self, account_id: uuid.UUID, stored: str) -> str:
        """The plaintext of a stored token; raises TokenDecryptError (tampered, swapped, unknown key)."""
        return self.keyring.decrypt(stored, associated_data=self.aad(account_id))

    def needs_rotation(self, stored: str) -> bool:
        return bool(self.keyring.needs_rotation(stored))

    def rotate(self, account_id: uuid.UUID, stored: str) -> str:
        """The stored token re-encrypted under the newest key."""
        return self.keyring.reencrypt(stored, associated_data=self.aad(account_id))


# --- the credentials of a publishing round ---------------------------------------------------


class OpenCredentials:
    """The publishing loop's view of accounts' credentials: the stored tokens opened, refreshed
    first when they expire within `refresh_margin_s` (once per account, however many of its
    posts are being published), and refreshed tokens kept at once by `keep_refreshed` (the
    service layer's: stored sealed, and told upstream, in one transaction)."""

    def __init__(
        self,
        tokens: AccountTokens,
        *,
        refresh_margin_s: float,
        clock: Callable[[], datetime],
        keep_refreshed: Callable[[AccountCredentials], Awaitable[object]],
    ) -> None:
        self._tokens = tokens
        self._margin = timedelta(seconds=refresh_margin_s)
        self._clock = clock
        self._keep_refreshed = keep_refreshed
        self._refresh_locks: dict[uuid.UUID, asyncio.Lock] = {}

    def open(self, account: SocialAccount) -> AccountCredentials:
        """The credentials of a stored account; raises TokenDecryptError."""
        account_id = account.id
        return AccountCredentials(
            social_account_id=account_id,
            platform=account.platform,
            handle=account.handle,
            external_account_id=account.external_account_id,
            api_base_url=account.api_base_url,
            access_token=self._tokens.open(account_id, account.access_token),
            refresh_token=self._tokens.open(account_id, account.refresh_token) if account.refresh_token else None,
            token_expires_at=account.token_expires_at,
            organization_id=account.organization_id,
        )

    async def fresh(
        self,
        adapter: PlatformAdapter,
        credentials: AccountCredentials,
        opened: dict[uuid.UUID, AccountCredentials | None],
    ) -> AccountCredentials:
        """The account's credentials, refreshed first when they expire soon: once per account,
        however many of its posts are in the batch."""
        account_id = credentials.social_account_id
        async with self._refresh_locks.setdefault(account_id, asyncio.Lock()):
            current = opened.get(account_id) or credentials
            fresh = await self._refresh_if_expiring(adapter, current)
            opened[account_id] = fresh
            return fresh

    async def _refresh_if_expiring(self, adapter: PlatformAdapter, account: AccountCredentials) -> AccountCredentials:
        expires = account.token_expires_at
        if expires is None or (account.refresh_token is None and not adapter.refreshes_access_token):
            return account
        if expires - self._margin > self._clock():
            return account
        try:
            tokens = await adapter.refresh(account)
        except NeedsReauth:
            raise  # refused for good: the account is not used any more
        except PublishFailure as failure:
            # The current token may still work; a 401 will say otherwise.
            log.warning("refreshing the token of account %s failed: %s", account.social_account_id, failure.detail)
            return account
        refreshed = account.with_tokens(tokens)
        await self.store(refreshed, tokens)
        return refreshed

    async def store(self, account: AccountCredentials, tokens: RefreshedTokens) -> None:
        """Keep an account's refreshed tokens (`keep_refreshed`: sealed, in a transaction of their own)."""
        await self._keep_refreshed(account)
        metrics.TOKENS_REFRESHED.labels(account.platform).inc()
        log.info("stored refreshed tokens of account %s", account.social_account_id)
