"""Which account publishes a brand's post on a platform.

The brand's default account for the platform when it is active and not deleted; else any
active, not deleted account linked to the brand for that platform (the longest linked
first, so the choice is stable); else none, and the platform fails with
NO_ACCOUNT_FOR_PLATFORM.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LinkedAccount:
    """An account linked to a brand, as the choice needs it."""

    social_account_id: uuid.UUID
    platform: str
    is_default: bool
    is_active: bool
    deleted: bool
    linked_at: datetime

    @property
    def usable(self) -> bool:
        return self.is_active and not self.deleted


def pick_publishing_account(linked: Iterable[LinkedAccount], platform: str) -> LinkedAccount | None:
    """The account to publish on `platform`, or None when the brand has no usable one."""
    candidates = [a for a in linked if a.platform == platform and a.usable]
    for account in candidates:
        if account.is_default:
            return account
    candidates.sort(key=lambda a: (a.linked_at, str(a.social_account_id)))
    return candidates[0] if candidates else None


def pick_accounts(linked: Sequence[LinkedAccount], platforms: Iterable[str]) -> dict[str, LinkedAccount | None]:
    """The choice for each platform of a post."""
    return {platform: pick_publishing_account(linked, platform) for platform in platforms}


@dataclass(frozen=True, slots=True)
class SocialAccount:
    """A social account as stored: its tokens are ciphertexts bound to it (never plaintext)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    platform: str
    handle: str
    external_account_id: str | None
    api_base_url: str | None
    access_token: str
    refresh_token: str | None
    token_expires_at: datetime | None
    is_active: bool
    deleted_at: datetime | None
    tokens_issued_at: datetime | None = None
    """When the stored pair was issued (None: unknown); an older pair never replaces it."""
    needs_reauth: str | None = None
    """Why refreshing failed for good (a ReauthReason), None while healthy: not used meanwhile."""
