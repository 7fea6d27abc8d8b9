"""The tokens a SocialAccountConnected or ...Updated brings: opened with the binding to the
event's organization and account, sealed to the account for storage, and kept only when the
pair is not older than the stored one (`domain.token_pairs`).

A ciphertext made for another account or another organization (moved between events, the
attack the binding exists for) is dead-lettered as `token_not_for_account`; so is one that
was tampered with, which AES-GCM cannot tell apart from it. One under a key this service does
not hold is `rejected` with that said, since adding the key and replaying fixes it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hopcast_publisher.adapters.credentials import AccountTokens, TokenDecryptError
from hopcast_publisher.domain.accounts import SocialAccount
from hopcast_publisher.domain.token_pairs import judge_arriving_pair
from hopcast_shared.contract import SocialAccountConnected, SocialAccountUpdated
from hopcast_shared.handling import PermanentError

log = logging.getLogger(__name__)

TOKEN_NOT_FOR_ACCOUNT = "token_not_for_account"  # noqa: S105 (a dead letter kind, no secret)
"""The dead letter's `error_kind` for a token that does not open for its organization and account."""


def _opened(tokens: AccountTokens, org: uuid.UUID, account_id: uuid.UUID, field: str, ciphertext: str) -> str:
    try:
        return tokens.reseal_from_transit(org, account_id, ciphertext)
    except TokenDecryptError:
        if not tokens.holds_key(ciphertext):
            raise PermanentError(f"{field} was made under a key this service does not hold") from None
        raise PermanentError(
            f"{field} is not a token of social account {account_id} of this organization "
            "(made for another account or organization, or tampered with)",
            kind=TOKEN_NOT_FOR_ACCOUNT,
        ) from None


def received_token_state(
    tokens: AccountTokens,
    org: uuid.UUID,
    data: SocialAccountConnected | SocialAccountUpdated,
    existing: SocialAccount | None,
) -> dict[str, Any]:
    """The token columns of the account's new state: the arriving pair sealed, or the stored
    pair when the arriving one is older; and its health (a newer pair clears `needs_reauth`).
    Raises PermanentError when a token does not open for this organization and account,
    whichever pair is kept."""
    account_id = data.social_account_id
    access = _opened(tokens, org, account_id, "access_token", data.access_token)
    refresh = _opened(tokens, org, account_id, "refresh_token", data.refresh_token) if data.refresh_token else None
    if existing is None:
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_expires_at": data.token_expires_at,
            "tokens_issued_at": data.tokens_issued_at,
            "needs_reauth": None,
        }
    verdict = judge_arriving_pair(existing.tokens_issued_at, data.tokens_issued_at)
    if not verdict.take:
        log.info(
            "social account %s: the arriving token pair (issued %s) is older than the stored one (issued %s); kept",
            account_id,
            data.tokens_issued_at or "at an unknown time",
            existing.tokens_issued_at,
        )
        return {
            "access_token": existing.access_token,
            "refresh_token": existing.refresh_token,
            "token_expires_at": existing.token_expires_at,
            "tokens_issued_at": existing.tokens_issued_at,
            "needs_reauth": existing.needs_reauth,
        }
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_expires_at": data.token_expires_at,
        "tokens_issued_at": data.tokens_issued_at,
        "needs_reauth": None if verdict.clears_reauth else existing.needs_reauth,
    }
