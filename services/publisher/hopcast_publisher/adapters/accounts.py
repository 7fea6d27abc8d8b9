"""SQL of social accounts, their links to brands (the kernel's projection, hopcast_shared.tenants,
keeps the brands themselves): what the publisher knows of who may publish for whom, and with which (sealed) tokens.

`publishing_contexts` reads, in one statement for a batch of pending posts, whether each
organization and brand is still active and which accounts the brand has linked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_publisher.domain.accounts import LinkedAccount, SocialAccount
from hopcast_shared import projections
from hopcast_shared.db import Conn

PublishingContext = tuple[bool, bool, list[LinkedAccount]]
"""(organization active, brand active, the brand's linked accounts)."""


class AccountRepository:
    """Social accounts and their links to brands."""

    async def publishing_contexts(
        self, conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], PublishingContext]:
        """For each (organization, brand), in one query: whether both are active, and the brand's
        linked accounts of that organization. An organization or brand the projection has not
        seen counts as active."""
        unique = list(dict.fromkeys(keys))
        rows = await conn.fetch(
            """
            SELECT k.org, k.brand,
                   (SELECT deleted_at IS NULL FROM organizations WHERE id = k.org) AS org_active,
                   (SELECT deleted_at IS NULL FROM brands WHERE id = k.brand) AS brand_active,
                   l.social_account_id, a.platform, l.is_default, a.is_active, a.deleted_at IS NOT NULL AS deleted,
                   l.linked_at
            FROM unnest($1::uuid[], $2::uuid[]) AS k(org, brand)
            LEFT JOIN (brand_accounts l JOIN social_accounts a ON a.id = l.social_account_id)
                   ON l.brand_profile_id = k.brand AND l.organization_id = k.org AND a.organization_id = k.org
            """,
            [k[0] for k in unique],
            [k[1] for k in unique],
        )
        contexts: dict[tuple[uuid.UUID, uuid.UUID], PublishingContext] = {}
        for r in rows:
            key = (r["org"], r["brand"])
            if key not in contexts:
                contexts[key] = (r["org_active"] is not False, r["brand_active"] is not False, [])
            if r["social_account_id"] is not None:
                contexts[key][2].append(
                    LinkedAccount(
                        r["social_account_id"],
                        r["platform"],
                        r["is_default"],
                        r["is_active"],
                        r["deleted"],
                        r["linked_at"],
                    )
                )
        return contexts

    async def account(self, conn: Conn, account_id: uuid.UUID, *, lock: bool = False) -> SocialAccount | None:
        suffix = " FOR UPDATE" if lock else ""
        row = await conn.fetchrow(f"SELECT * FROM social_accounts WHERE id = $1{suffix}", account_id)
        return social_account(row) if row is not None else None

    async def upsert_account(self, conn: Conn, values: dict[str, Any]) -> None:
        """The whole new state of an account (tokens already sealed; the pair and its health as
        the handler decided: `domain.token_pairs`)."""
        await conn.execute(
            """
            INSERT INTO social_accounts (id, organization_id, platform, handle, external_account_id, api_base_url,
                                         access_token, refresh_token, token_expires_at, is_active, tokens_issued_at,
                                         needs_reauth)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (id) DO UPDATE SET handle = EXCLUDED.handle, external_account_id = EXCLUDED.external_account_id,
                api_base_url = EXCLUDED.api_base_url, access_token = EXCLUDED.access_token,
                refresh_token = EXCLUDED.refresh_token, token_expires_at = EXCLUDED.token_expires_at,
                is_active = EXCLUDED.is_active, tokens_issued_at = EXCLUDED.tokens_issued_at,
                needs_reauth = EXCLUDED.needs_reauth,
                needs_reauth_since = CASE WHEN EXCLUDED.needs_reauth IS NULL THEN NULL
                                          ELSE social_accounts.needs_reauth_since END,
                updated_at = now()
            """,
            values["id"],
            values["organization_id"],
            values["platform"],
            values["handle"],
            values["external_account_id"],
            values["api_base_url"],
            values["access_token"],
            values["refresh_token"],
            values["token_expires_at"],
            values["is_active"],
            values["tokens_issued_at"],
            values["needs_reauth"],
        )

    async def set_account_deleted(self, conn: Conn, account_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        return await projections.set_deleted(conn, "social_accounts", account_id, org_id, deleted)

    async def store_tokens(
        self,
        conn: Conn,
        account_id: uuid.UUID,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
        issued_at: datetime,
    ) -> tuple[uuid.UUID, str] | None:
        """Store refreshed tokens (sealed) issued at `issued_at`, unless the stored pair is newer
        (upstream's, arrived meanwhile). The account's (organization, platform) when stored."""
        row = await conn.fetchrow(
            """
            UPDATE social_accounts SET access_token = $2, refresh_token = $3, token_expires_at = $4,
                tokens_issued_at = $5, updated_at = now()
            WHERE id = $1 AND (tokens_issued_at IS NULL OR tokens_issued_at <= $5)
            RETURNING organization_id, platform
            """,
            account_id,
            access_token,
            refresh_token,
            expires_at,
            issued_at,
        )
        return (row["organization_id"], row["platform"]) if row is not None else None

    async def mark_needs_reauth(self, conn: Conn, account_id: uuid.UUID, reason: str) -> tuple[uuid.UUID, str] | None:
        """Mark a healthy account as needing re-authorization; its (organization, platform) when
        this call marked it, None when it was marked already (so the event is emitted once)."""
        row = await conn.fetchrow(
            """
            UPDATE social_accounts SET needs_reauth = $2, needs_reauth_since = now(), updated_at = now()
            WHERE id = $1 AND needs_reauth IS NULL
            RETURNING organization_id, platform
            """,
            account_id,
            reason,
        )
        return (row["organization_id"], row["platform"]) if row is not None else None

    async def accounts_to_rotate(
        self, conn: Conn, after: uuid.UUID | None, limit: int
    ) -> list[tuple[uuid.UUID, str, str | None]]:
        """(id, sealed access token, sealed refresh token) of accounts after `after`, in id order."""
        rows = await conn.fetch(
            """
            SELECT id, access_token, refresh_token FROM social_accounts
            WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2
            """,
            after,
            limit,
        )
        return [(r["id"], r["access_token"], r["refresh_token"]) for r in rows]

    async def replace_tokens_if_unchanged(
        self,
        conn: Conn,
        account_id: uuid.UUID,
        old: tuple[str, str | None],
        new: tuple[str, str | None],
    ) -> bool:
        """Compare-and-set, so a rotation never overwrites a token the service refreshed meanwhile."""
        status = await conn.execute(
            """
            UPDATE social_accounts SET access_token = $4, refresh_token = $5
            WHERE id = $1 AND access_token = $2 AND refresh_token IS NOT DISTINCT FROM $3
            """,
            account_id,
            old[0],
            old[1],
            new[0],
            new[1],
        )
        return bool(status != "UPDATE 0")

    async def link_account(
        self,
        conn: Conn,
        *,
        brand_id: uuid.UUID,
        account_id: uuid.UUID,
        org_id: uuid.UUID,
        platform: str,
        is_default: bool,
    ) -> None:
        """Upsert a link; a new default replaces the brand's previous default for the platform."""
        if is_default:
            await conn.execute(
                """
                UPDATE brand_accounts SET is_default = false
                WHERE brand_profile_id = $1 AND platform = $2 AND is_default AND social_account_id <> $3
                  AND organization_id = $4
                """,
                brand_id,
                platform,
                account_id,
                org_id,
            )
        await conn.execute(
            """
            INSERT INTO brand_accounts (brand_profile_id, social_account_id, organization_id, platform, is_default)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (brand_profile_id, social_account_id) DO UPDATE SET is_default = EXCLUDED.is_default
            """,
            brand_id,
            account_id,
            org_id,
            platform,
            is_default,
        )

    async def unlink_account(self, conn: Conn, brand_id: uuid.UUID, account_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        """False when the organization has no such link."""
        status = await conn.execute(
            """
            DELETE FROM brand_accounts
            WHERE brand_profile_id = $1 AND social_account_id = $2 AND organization_id = $3
            """,
            brand_id,
            account_id,
            org_id,
        )
        return bool(status != "DELETE 0")

    async def linked_accounts(self, conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID) -> list[LinkedAccount]:
        rows = await conn.fetch(
            """
            SELECT l.social_account_id, a.platform, l.is_default, a.is_active, a.deleted_at IS NOT NULL AS deleted,
                   l.linked_at
            FROM brand_accounts l JOIN social_accounts a ON a.id = l.social_account_id
            WHERE l.brand_profile_id = $1 AND l.organization_id = $2 AND a.organization_id = $2
            """,
            brand_id,
            org_id,
        )
        return [
            LinkedAccount(
                r["social_account_id"], r["platform"], r["is_default"], r["is_active"], r["deleted"], r["linked_at"]
            )
            for r in rows
        ]

    async def account_brands(
        self, conn: Conn, account_id: uuid.UUID
    ) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
        """The account (its organization, platform, state) and the brands of its organization that
        use it, oldest link first (the brand_accounts_account index); None for an unknown account."""
        account = await conn.fetchrow(
            "SELECT id, organization_id, platform, is_active, deleted_at FROM social_accounts WHERE id = $1",
            account_id,
        )
        if account is None:
            return None
        links = await conn.fetch(
            """
            SELECT l.brand_profile_id, b.name, l.is_default, l.linked_at, b.deleted_at AS brand_deleted_at
            FROM brand_accounts l LEFT JOIN brands b ON b.id = l.brand_profile_id
            WHERE l.social_account_id = $1 AND l.organization_id = $2
            ORDER BY l.linked_at, l.brand_profile_id
            """,
            account_id,
            account["organization_id"],
        )
        return account, list(links)

    async def accounts_by_id(self, conn: Conn, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SocialAccount]:
        rows = await conn.fetch("SELECT * FROM social_accounts WHERE id = ANY($1::uuid[])", list(account_ids))
        return {r["id"]: social_account(r) for r in rows}


def social_account(r: asyncpg.Record) -> SocialAccount:
    return SocialAccount(
        r["id"],
        r["organization_id"],
        r["platform"],
        r["handle"],
        r["external_account_id"],
        r["api_base_url"],
        r["access_token"],
        r["refresh_token"],
        r["token_expires_at"],
        r["is_active"],
        r["deleted_at"],
        r["tokens_issued_at"],
        r["needs_reauth"],
    )
