"""SQL of pending posts and their publishing attempts.

Two statements carry the guarantees: `lock_pending_posts` creates or locks pending posts in
one statement (in id order), so inputs arriving together on different topics are applied one
after the other; `claim_publishing` leases PUBLISHING pending posts with FOR UPDATE SKIP LOCKED,
so any number of workers share them and a crashed worker's posts are taken over when its
lease runs out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from hopcast_publisher.domain.publishing import MediaOfPost, PublishAttempt, PublishingPost
from hopcast_shared.db import Conn

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
    ("texts", "jsonb"),
    ("media", "jsonb"),
    ("platforms", "text[]"),
    ("angle", "text"),
    ("angle_reason", "text"),
    ("requires_approval", "boolean"),
    ("approval_deadline", "timestamptz"),
    ("debit", "text"),
    ("approval", "text"),
    ("status", "text"),
    ("cause_event_id", "uuid"),
    ("trace_headers", "jsonb"),
    ("publishing_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("deadline_passed_at", "timestamptz"),
    ("run_deadline", "timestamptz"),
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


class PendingPostRepository:
    """Pending posts (the state of their inputs) and one publishing attempt per platform."""

    async def lock_pending_posts(
        self, conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """The pending posts (id, organization id), each created WAITING if this is its first
        input, locked for this transaction: one statement for all, in id order (so two batches
        that share pending posts wait for each other instead of deadlocking). A pending post
        named twice is created with its first organization (the caller refuses the other).
        Each comes as its state, column by name, for the handler to change and save."""
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
        return {r["id"]: dict(r) for r in rows}

    async def save_pending_posts(
        self, conn: Conn, states: Sequence[Mapping[str, Any]]
    ) -> dict[uuid.UUID, PublishingPost]:
        """Write the state of pending posts (every column of PENDING_POST_STATE, as the rows are
        locked by this transaction) in one statement; returns the pending posts written."""
        if not states:
            return {}
        columns: list[list[Any]] = [[s["id"] for s in states]]
        for name, kind in PENDING_POST_STATE:
            if kind in ("text[]", "jsonb"):
                columns.append([None if s[name] is None else json.dumps(s[name]) for s in states])
            else:
                columns.append([s[name] for s in states])
        rows = await conn.fetch(_SAVE_STATE, *columns)
        return {r["id"]: publishing_post(r) for r in rows}

    async def record_run_deadline(self, conn: Conn, org_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None:
        """The run is past its deadline: remembered for a pending post that has not come yet, and
        marked on the one that has, which is returned locked, as its state (None when none)."""
        await conn.execute(
            "INSERT INTO run_deadlines (organization_id, run_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", org_id, run_id
        )
        row = await conn.fetchrow(
            """
            UPDATE pending_posts SET deadline_passed_at = coalesce(deadline_passed_at, now()), updated_at = now()
            WHERE id = (SELECT id FROM pending_posts WHERE run_id = $1 AND organization_id = $2 FOR UPDATE)
            RETURNING *
            """,
            run_id,
            org_id,
        )
        return None if row is None else dict(row)

    async def run_of_another(self, conn: Conn, run_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        """Whether another organization than `org_id` has a pending post of this run."""
        return bool(
            await conn.fetchval(
                "SELECT true FROM pending_posts WHERE run_id = $1 AND organization_id <> $2 LIMIT 1", run_id, org_id
            )
        )

    async def runs_past_deadline(
        self, conn: Conn, runs: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Of these (organization id, run id), those past their deadline."""
        if not runs:
            return set()
        rows = await conn.fetch(
            """
            SELECT d.organization_id, d.run_id FROM run_deadlines d
            JOIN unnest($1::uuid[], $2::uuid[]) AS k(o, r) ON d.organization_id = k.o AND d.run_id = k.r
            """,
            [o for o, _ in runs],
            [r for _, r in runs],
        )
        return {(r["organization_id"], r["run_id"]) for r in rows}

    async def insert_attempts(
        self, conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]]
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

    async def claim_publishing(
        self, conn: Conn, *, lease_token: uuid.UUID, lease_s: float, limit: int
    ) -> list[PublishingPost]:
        """Lease up to `limit` PUBLISHING pending posts that no live worker holds (oldest first),
        each with whether its organization and its brand are still active (org_active, brand_active)
        and the brand's language (brand_language: its BrandProfile's `language`, or null)."""
        rows = await conn.fetch(
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
                (SELECT deleted_at IS NULL FROM brands WHERE id = p.brand_profile_id) IS NOT FALSE AS brand_active,
                (SELECT profile->>'language' FROM brands WHERE id = p.brand_profile_id) AS brand_language
            """,
            lease_token,
            lease_s,
            limit,
        )
        return [publishing_post(r) for r in rows]

    async def attempts_of(self, conn: Conn, pending_post_ids: Sequence[uuid.UUID]) -> list[PublishAttempt]:
        rows = await conn.fetch(
            "SELECT * FROM publish_attempts WHERE pending_post_id = ANY($1::uuid[]) ORDER BY pending_post_id, platform",
            list(pending_post_ids),
        )
        return [
            PublishAttempt(
                r["pending_post_id"],
                r["platform"],
                r["idempotency_key"],
                r["social_account_id"],
                r["status"],
                r["failure_reason"],
                r["failure_detail"],
                r["created_at"],
                r["external_id"],
                r["external_url"],
                r["published_at"],
                r["settled_at"],
                r["retry_at"],
                r["deferral_reason"],
            )
            for r in rows
        ]

    async def finish_pending_posts(
        self, conn: Conn, outcomes: Sequence[tuple[uuid.UUID, str]], *, lease_token: uuid.UUID | None
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
        self,
        conn: Conn,
        pending_post_id: uuid.UUID,
        *,
        lease_token: uuid.UUID,
        failures: int,
        error: str,
        retry_in_s: float,
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

    async def record_completion_error(
        self, conn: Conn, pending_post_id: uuid.UUID, *, failures: int, error: str
    ) -> None:
        await conn.execute(
            "UPDATE pending_posts SET completion_failures = $2, completion_error = $3 WHERE id = $1",
            pending_post_id,
            failures,
            error,
        )

    async def abandon_pending_post(
        self, conn: Conn, pending_post_id: uuid.UUID, *, lease_token: uuid.UUID, failures: int, error: str
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

    async def settle_attempts(
        self, conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, str | None, str | None]]
    ) -> None:
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

    async def pending_post(self, conn: Conn, pending_post_id: uuid.UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow("SELECT * FROM pending_posts WHERE id = $1", pending_post_id)
        return row


def publishing_post(r: asyncpg.Record) -> PublishingPost:
    """A pending_posts row (with org_active, brand_active and brand_language when the claim read them)."""
    return PublishingPost(
        r["id"],
        r["organization_id"],
        r["run_id"],
        r["schedule_id"],
        r["brand_profile_id"],
        r["material_id"],
        r["due_at"],
        r["content"],
        r["hashtags"],
        r["media_urls"],
        r["platforms"],
        r["angle"],
        r["cause_event_id"],
        r["trace_headers"],
        r["claims"],
        r["completion_failures"],
        r.get("org_active", True),
        r.get("brand_active", True),
        r.get("texts") or {},
        r.get("brand_language"),
        tuple(MediaOfPost.from_json(m) for m in r.get("media") or ()),
        r.get("deadline_passed_at") is not None,
        r.get("angle_reason"),
    )
