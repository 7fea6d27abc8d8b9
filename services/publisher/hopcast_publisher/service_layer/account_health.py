"""What the publisher learns about an account's credentials while publishing, stored and told
upstream in one transaction each (the outbox), so upstream stays in step:

- tokens it refreshed: stored sealed to the account with the time of the refresh as their
  issued time (unless upstream's newer pair arrived meanwhile), and SocialAccountTokensRefreshed
  with the pair bound to the organization and account as upstream's events bind them;
- an account whose refresh failed for good (`adapters.platforms.reauth.NeedsReauth`): marked
  as needing re-authorization, and SocialAccountNeedsReauth once (a second failure finds it
  marked and says nothing). The publishing loop uses no marked account; a newer pair from
  upstream clears the mark (`account_tokens`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from hopcast_publisher import metrics
from hopcast_publisher.adapters.platforms.base import AccountCredentials
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.publishing import SOURCE, now_utc
from hopcast_shared.contract import (
    Platform,
    ReauthReason,
    SocialAccountNeedsReauth,
    SocialAccountTokensRefreshed,
)
from hopcast_shared.contract.events import EventData
from hopcast_shared.db import Conn, Database
from hopcast_shared.outbox import event_rows, write_outbox
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import inject_headers

log = logging.getLogger(__name__)


class AccountHealth:
    """Keeps refreshed tokens and marks accounts needing re-authorization, each with its event."""

    def __init__(
        self, db: Database, kafka: KafkaSettings, deps: PublisherDeps, *, clock: Callable[[], datetime] = now_utc
    ) -> None:
        self._db = db
        self._kafka = kafka
        self._deps = deps
        self._clock = clock

    async def keep_refreshed(self, account: AccountCredentials) -> bool:
        """Store an account's refreshed tokens, issued now, and emit SocialAccountTokensRefreshed;
        False (nothing written) when the stored pair is newer than now."""
        account_id, tokens = account.social_account_id, self._deps.tokens
        issued_at = self._clock()
        async with self._db.transaction() as conn:
            owner = await self._deps.accounts.store_tokens(
                conn,
                account_id,
                access_token=tokens.seal(account_id, account.access_token),
                refresh_token=tokens.seal(account_id, account.refresh_token) if account.refresh_token else None,
                expires_at=account.token_expires_at,
                issued_at=issued_at,
            )
            if owner is None:
                log.info("account %s got a newer token pair meanwhile; the refreshed one is dropped", account_id)
                return False
            org = owner[0]
            refreshed = SocialAccountTokensRefreshed(
                social_account_id=account_id,
                access_token=tokens.for_transit(org, account_id, account.access_token),
                refresh_token=tokens.for_transit(org, account_id, account.refresh_token)
                if account.refresh_token
                else None,
                token_expires_at=account.token_expires_at,
                tokens_issued_at=issued_at,
            )
            await self._emit(conn, org, refreshed)
        return True

    async def mark_needs_reauth(self, account_id: uuid.UUID, reason: ReauthReason) -> bool:
        """Mark a healthy account as needing re-authorization and emit SocialAccountNeedsReauth;
        False when it was marked already (the event went out then)."""
        async with self._db.transaction() as conn:
            owner = await self._deps.accounts.mark_needs_reauth(conn, account_id, reason.value)
            if owner is None:
                return False
            org, platform = owner
            await self._emit(
                conn,
                org,
                SocialAccountNeedsReauth(social_account_id=account_id, platform=Platform(platform), reason=reason),
            )
        metrics.ACCOUNTS_NEEDING_REAUTH.labels(reason.value).inc()
        log.warning("social account %s needs re-authorization (%s); it is not used until then", account_id, reason)
        return True

    async def _emit(self, conn: Conn, org: uuid.UUID, event: EventData) -> None:
        rows = event_rows(
            self._kafka,
            [event],
            organization_id=org,
            source=SOURCE,
            correlation_id=None,
            causation_id=None,
            trace=inject_headers(),
        )
        await write_outbox(conn, rows)
