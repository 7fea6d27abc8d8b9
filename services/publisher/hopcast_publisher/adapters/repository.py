"""SQL of the publisher: projections, social accounts and links, pending posts and their
publishing attempts, posts, and the read models of the HTTP API.

Two statements carry the guarantees: `lock_pending_posts` creates or locks pending posts in
one statement (in id order), so inputs arriving together on different topics are applied one
after the other; `claim_publishing` leases PUBLISHING pending posts with FOR UPDATE SKIP LOCKED, so
any number of workers share them and a crashed worker's posts are taken over when its
lease runs out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_publisher.domain.accounts import LinkedAccount
from hopcast_shared import projections
from hopcast_shared.db import Conn

# NOTIFY channel of migration 0002's trigger: a pending post started publishing.
PUBLISH_CHANNEL = "hopcast_publisher_publish"

# --- organizations and brands (the local projection) ---------------------------------------


async def brand_owner(conn: Conn, brand_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await conn.fetchval("SELECT organization_id FROM brands WHERE id = $1", brand_id)
    return owner


async def upsert_brand(conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID, name: str) -> None:
    await conn.execute(
        """
        INSERT INTO brands (id, organization_id, name) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
        """,
        brand_id,
        org_id,
        name,
    )


PublishingContext = tuple[bool, bool, list[LinkedAccount]]
"""(organization active, brand active, the brand's linked accounts)."""


async def publishing_contexts(
    conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
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
                    r["social_account_id"], r["platform"], r["is_default"], r["is_active"], r["deleted"], r["linked_at"]
                )
            )
    return contexts


# --- social accounts and links ---------------------------------------------------------------


async def account(conn: Conn, account_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT * FROM social_accounts WHERE id = $1{suffix}", account_id)
    return row


async def upsert_account(conn: Conn, values: dict[str, Any]) -> None:
    """The whole new state of an account (tokens already sealed)."""
    await conn.execute(
        """
        INSERT INTO social_accounts (id, organization_id, platform, handle, external_account_id, api_base_url,
                                     access_token, refresh_token, token_expires_at, is_active)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (id) DO UPDATE SET handle = EXCLUDED.handle, external_account_id = EXCLUDED.external_account_id,
            api_base_url = EXCLUDED.api_base_url, access_token = EXCLUDED.access_token,
            refresh_token = EXCLUDED.refresh_token, token_expires_at = EXCLUDED.token_expires_at,
            is_active = EXCLUDED.is_active, updated_at = now()
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
    )


async def set_account_deleted(conn: Conn, account_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
    return await projections.set_deleted(conn, "social_accounts", account_id, org_id, deleted)


async def store_tokens(
    conn: Conn,
    account_id: uuid.UUID,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    """Store refreshed tokens (sealed)."""
    await conn.execute(
        """
        UPDATE social_accounts SET access_token = $2, refresh_token = $3, token_expires_at = $4, updated_at = now()
        WHERE id = $1
        """,
        account_id,
        access_token,
        refresh_token,
        expires_at,
    )


async def accounts_to_rotate(conn: Conn, after: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT id, access_token, refresh_token FROM social_accounts
        WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2
        """,
        after,
        limit,
    )
    return rows


async def replace_tokens_if_unchanged(
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


async def unlink_account(conn: Conn, brand_id: uuid.UUID, account_id: uuid.UUID, org_id: uuid.UUID) -> bool:
    """False when the organization has no such link."""
    status = await conn.execute(
        "DELETE FROM brand_accounts WHERE brand_profile_id = $1 AND social_account_id = $2 AND organization_id = $3",
        brand_id,
        account_id,
        org_id,
    )
    return bool(status != "DELETE 0")


async def linked_accounts(conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID) -> list[LinkedAccount]:
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


# --- pending posts -----------------------------------------------------------------------------


async def lock_pending_posts(
    conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[uuid.UUID, asyncpg.Record]:
    """The pending posts (id, organization id), each created WAITING if this is its first
    input, locked for this transaction: one statement for all, in id order (so two batches
    that share pending posts wait for each other instead of deadlocking). A pending post
    named twice is created with its first organization (the caller refuses the other)."""
    first: dict[uuid.UUID, uuid.UUID] = {}
    for pending_post_id, org_id in keys:
        first.setdefault(pending_post_id, org_id)
    ids = sorted(first)
    rows = await conn.fetch(
        """
        INSERT INTO pending_posts (id, organization_id)
        SELECT id, org FROM unnest($1::uuid[], $2::uuid[]) AS k(id, org) ORDER BY id
        ON CONFLICT (id) DO UPDATE SET updated_at = now()
        RETURNING *
        """,
        ids,
        [first[i] for i in ids],
    )
    return {r["id"]: r for r in rows}


# What the inputs of a pending post change (names are ours, never input); arrays and JSON
# travel as JSON text, since unnest would flatten an array of arrays.
PENDING_POST_STATE = (
    ("has_post", "boolean"),
    ("run_id", "uuid"),
    ("schedule_id", "uuid"),
    ("brand_profile_id", "uuid"),
    ("material_id", "uuid"),
    ("due_at", "timestamptz"),
    ("content", "text"),
    ("hashtags", "text[]"),
    ("media_urls", "text[]"),
    ("platforms", "text[]"),
    ("angle", "text"),
    ("requires_approval", "boolean"),
    ("debit", "text"),
    ("approval", "text"),
    ("status", "text"),
    ("cause_event_id", "uuid"),
    ("trace_headers", "jsonb"),
    ("publishing_at", "timestamptz"),
    ("completed_at", "timestamptz"),
)


def _state_sql() -> str:
    arrays, assignments = [], []
    for i, (name, kind) in enumerate(PENDING_POST_STATE, start=2):
        if kind == "text[]":
            arrays.append(f"${i}::text[]")
            value = f"CASE WHEN s.{name} IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(s.{name}::jsonb)) END"
        elif kind == "jsonb":
            arrays.append(f"${i}::text[]")
            value = f"s.{name}::jsonb"
        else:
            arrays.append(f"${i}::{kind}[]")
            value = f"s.{name}"
        assignments.append(f"{name} = {value}")
    names = ", ".join(name for name, _ in PENDING_POST_STATE)
    return f"""
        UPDATE pending_posts p SET {", ".join(assignments)}, updated_at = now()
        FROM unnest($1::uuid[], {", ".join(arrays)}) AS s(id, {names})
        WHERE p.id = s.id
        RETURNING p.*
        """


_SAVE_STATE = _state_sql()


async def save_pending_posts(conn: Conn, states: Sequence[Mapping[str, Any]]) -> dict[uuid.UUID, asyncpg.Record]:
    """Write the state of pending posts (every column of PENDING_POST_STATE, as the rows are
    locked by this transaction) in one statement; returns the rows written."""
    if not states:
        return {}
    columns: list[list[Any]] = [[s["id"] for s in states]]
    for name, kind in PENDING_POST_STATE:
        if kind in ("text[]", "jsonb"):
            columns.append([None if s[name] is None else json.dumps(s[name]) for s in states])
        else:
            columns.append([s[name] for s in states])
    rows = await conn.fetch(_SAVE_STATE, *columns)
    return {r["id"]: r for r in rows}


async def insert_attempts(
    conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]]
) -> None:
    """(pending_post_id, platform, idempotency_key, social_account_id, status, failure_reason, failure_detail)."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO publish_attempts (pending_post_id, platform, idempotency_key, social_account_id, status,
                                      failure_reason, failure_detail)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[])
        ON CONFLICT (pending_post_id, platform) DO NOTHING
        """,
        *([row[i] for row in rows] for i in range(7)),
    )


async def claim_publishing(conn: Conn, *, lease_token: uuid.UUID, lease_s: float, limit: int) -> list[asyncpg.Record]:
    """Lease up to `limit` PUBLISHING pending posts that no live worker holds (oldest first),
    each with whether its organization and its brand are still active (org_active, brand_active)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        UPDATE pending_posts p
        SET lease_token = $1, lease_until = now() + make_interval(secs => $2), claims = claims + 1
        FROM (
            SELECT id FROM pending_posts
            WHERE status = 'PUBLISHING' AND (lease_until IS NULL OR lease_until < now())
            ORDER BY publishing_at LIMIT $3
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE p.id = due.id
        RETURNING p.*,
            (SELECT deleted_at IS NULL FROM organizations WHERE id = p.organization_id) IS NOT FALSE AS org_active,
            (SELECT deleted_at IS NULL FROM brands WHERE id = p.brand_profile_id) IS NOT FALSE AS brand_active
        """,
        lease_token,
        lease_s,
        limit,
    )
    return rows


async def attempts_of(conn: Conn, pending_post_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM publish_attempts WHERE pending_post_id = ANY($1::uuid[]) ORDER BY pending_post_id, platform",
        list(pending_post_ids),
    )
    return rows


async def accounts_by_id(conn: Conn, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM social_accounts WHERE id = ANY($1::uuid[])", list(account_ids))
    return {r["id"]: r for r in rows}


async def finish_pending_posts(
    conn: Conn, outcomes: Sequence[tuple[uuid.UUID, str]], *, lease_token: uuid.UUID | None
) -> set[uuid.UUID]:
    """Mark PUBLISHING pending posts done with their outcome, only those still held under
    `lease_token` (None: in the transaction that started publishing). Returns those marked."""
    if not outcomes:
        return set()
    rows = await conn.fetch(
        """
        UPDATE pending_posts p
        SET status = o.outcome, completed_at = now(), lease_token = NULL, lease_until = NULL, updated_at = now()
        FROM unnest($1::uuid[], $2::text[]) AS o(id, outcome)
        WHERE p.id = o.id AND p.status = 'PUBLISHING' AND p.lease_token IS NOT DISTINCT FROM $3
        RETURNING p.id
        """,
        [o[0] for o in outcomes],
        [o[1] for o in outcomes],
        lease_token,
    )
    return {r["id"] for r in rows}


async def defer_completion(
    conn: Conn, pending_post_id: uuid.UUID, *, lease_token: uuid.UUID, failures: int, error: str, retry_in_s: float
) -> bool:
    """A pending post whose completion failed stays PUBLISHING, claimable again only after
    `retry_in_s` (its lease now ends then); only while this worker still holds it."""
    status = await conn.execute(
        """
        UPDATE pending_posts
        SET lease_until = now() + make_interval(secs => $3), completion_failures = $4, completion_error = $5,
            updated_at = now()
        WHERE id = $1 AND status = 'PUBLISHING' AND lease_token = $2
        """,
        pending_post_id,
        lease_token,
        retry_in_s,
        failures,
        error,
    )
    return bool(status != "UPDATE 0")


async def record_completion_error(conn: Conn, pending_post_id: uuid.UUID, *, failures: int, error: str) -> None:
    await conn.execute(
        "UPDATE pending_posts SET completion_failures = $2, completion_error = $3 WHERE id = $1",
        pending_post_id,
        failures,
        error,
    )


async def abandon_pending_post(
    conn: Conn, pending_post_id: uuid.UUID, *, lease_token: uuid.UUID, failures: int, error: str
) -> bool:
    """The last resort, when not even its failure can be written as events: end it
    PUBLISH_FAILED with the error kept on the row (the caller logs it and counts it)."""
    status = await conn.execute(
        """
        UPDATE pending_posts
        SET status = 'PUBLISH_FAILED', completed_at = now(), lease_token = NULL, lease_until = NULL,
            completion_failures = $3, completion_error = $4, updated_at = now()
        WHERE id = $1 AND status = 'PUBLISHING' AND lease_token = $2
        """,
        pending_post_id,
        lease_token,
        failures,
        error,
    )
    return bool(status != "UPDATE 0")


async def settle_attempts(conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, str | None, str | None]]) -> None:
    """(pending_post_id, platform, status, failure_reason, failure_detail) for each attempt."""
    if not rows:
        return
    await conn.execute(
        """
        UPDATE publish_attempts a
        SET status = r.status, failure_reason = r.reason, failure_detail = r.detail
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
             AS r(id, platform, status, reason, detail)
        WHERE a.pending_post_id = r.id AND a.platform = r.platform
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


POST_COLUMNS = (
    "id",
    "organization_id",
    "pending_post_id",
    "run_id",
    "schedule_id",
    "brand_profile_id",
    "material_id",
    "social_account_id",
    "platform",
    "angle",
    "content",
    "external_id",
    "external_url",
    "published_at",
)
_POST_TYPES = (
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
)


async def insert_posts(conn: Conn, posts: Sequence[dict[str, Any]]) -> None:
    """Posts in one statement; a post already there for its pending post and platform is kept."""
    if not posts:
        return
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_POST_TYPES))
    await conn.execute(
        f"""
        INSERT INTO posts ({", ".join(POST_COLUMNS)})
        SELECT * FROM unnest({arrays})
        ON CONFLICT (pending_post_id, platform) DO NOTHING
        """,
        *([p[c] for p in posts] for c in POST_COLUMNS),
    )


async def pending_post(conn: Conn, pending_post_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow("SELECT * FROM pending_posts WHERE id = $1", pending_post_id)
    return row


# --- posts ---------------------------------------------------------------------------------------


async def post(conn: Conn, post_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT * FROM posts WHERE id = $1{suffix}", post_id)
    return row


async def posts_of_pending_post(conn: Conn, pending_post_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM posts WHERE pending_post_id = $1 ORDER BY platform", pending_post_id
    )
    return rows


async def record_engagement(
    conn: Conn,
    post_id: uuid.UUID,
    *,
    likes: int,
    comments: int,
    shares: int,
    impressions: int,
    rate: float,
    observed_at: datetime,
) -> None:
    await conn.execute(
        """
        UPDATE posts SET likes = $2, comments = $3, shares = $4, impressions = $5, engagement_rate = $6,
            engagement_observed_at = $7, updated_at = now()
        WHERE id = $1
        """,
        post_id,
        likes,
        comments,
        shares,
        impressions,
        rate,
        observed_at,
    )


async def set_post_deleted(conn: Conn, post_id: uuid.UUID, deleted: bool) -> bool:
    status = await conn.execute(
        """
        UPDATE posts SET deleted_at = CASE WHEN $2 THEN coalesce(deleted_at, now()) END, updated_at = now()
        WHERE id = $1
        """,
        post_id,
        deleted,
    )
    return bool(status != "UPDATE 0")


async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
    """Delete for good what was soft-deleted (or finished) more than `older_than_days` ago:
    organizations with everything of theirs (accounts and their tokens, links, pending posts,
    posts, brands); brands with their links, pending posts and posts; posts; accounts; and
    pending posts that ended that long ago.

    The organizations and brands are locked first (projections.lock_purgeable)."""
    cutoff = "now() - make_interval(days => $1)"
    orgs, brands = await projections.lock_purgeable(conn, older_than_days)
    counts: dict[str, int] = {}

    async def delete(name: str, sql: str, *args: object) -> None:
        status = await conn.execute(sql, *args)
        counts[name] = int(status.split()[-1])

    of_gone = "organization_id = ANY($2::uuid[]) OR brand_profile_id = ANY($3::uuid[])"
    await delete("posts", f"DELETE FROM posts WHERE deleted_at < {cutoff} OR {of_gone}", older_than_days, orgs, brands)
    # Attempts go with their pending post (ON DELETE CASCADE).
    await delete(
        "pending_posts",
        f"DELETE FROM pending_posts WHERE completed_at < {cutoff} OR {of_gone}",
        older_than_days,
        orgs,
        brands,
    )
    await delete(
        "brand_accounts",
        "DELETE FROM brand_accounts WHERE organization_id = ANY($1::uuid[]) OR brand_profile_id = ANY($2::uuid[])",
        orgs,
        brands,
    )
    # Their remaining links go with the accounts (ON DELETE CASCADE).
    await delete(
        "social_accounts",
        f"DELETE FROM social_accounts WHERE deleted_at < {cutoff} OR organization_id = ANY($2::uuid[])",
        older_than_days,
        orgs,
    )
    await delete("brands", "DELETE FROM brands WHERE id = ANY($1::uuid[])", brands)
    await delete("organizations", "DELETE FROM organizations WHERE id = ANY($1::uuid[])", orgs)
    return counts


# --- read models -------------------------------------------------------------------------------


async def angle_performance(conn: Conn, brand_id: uuid.UUID, since: datetime) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT angle, count(*) AS posts, sum(likes) AS likes, sum(comments) AS comments, sum(shares) AS shares,
               sum(impressions) AS impressions, avg(engagement_rate) AS avg_engagement_rate
        FROM posts
        WHERE brand_profile_id = $1 AND published_at >= $2 AND deleted_at IS NULL
        GROUP BY angle ORDER BY avg(engagement_rate) DESC, angle
        """,
        brand_id,
        since,
    )
    return rows


async def platform_performance(conn: Conn, org_id: uuid.UUID, since: datetime) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT platform, count(*) AS posts, sum(likes) AS likes, sum(comments) AS comments, sum(shares) AS shares,
               sum(impressions) AS impressions, avg(engagement_rate) AS avg_engagement_rate
        FROM posts
        WHERE organization_id = $1 AND published_at >= $2 AND deleted_at IS NULL
        GROUP BY platform ORDER BY avg(engagement_rate) DESC, platform
        """,
        org_id,
        since,
    )
    return rows
