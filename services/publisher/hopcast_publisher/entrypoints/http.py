"""GET /brands/{id}/angle-performance, /organizations/{id}/platform-performance (both over
the last 30 days, or ?days=N), /posts/{id}, /pending-posts/{id}, /social-accounts/{id}/brands,
and /organizations/{id}/overview (the publisher's part of the overview: posts in the last 30
days by platform, or ?days=N).

Each answer names its organization (a brand's is its owner in the brand projection, so an unknown
brand is 404); the kernel's router sends it only to a token that may read it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.domain.posts import PublishedPost
from hopcast_publisher.service_layer.publishing import now_utc
from hopcast_shared import projections
from hopcast_shared.http import JsonResponse, JsonRoute, path_id
from hopcast_shared.service import ServiceRuntime

DEFAULT_DAYS = 30
_PENDING_POSTS = PendingPostRepository()
_POSTS = PostRepository()
_ACCOUNTS = AccountRepository()


def _since(query: dict[str, str]) -> tuple[int, datetime]:
    try:
        days = int(query.get("days", DEFAULT_DAYS))
    except ValueError:
        raise ValueError("days must be an integer") from None
    if not 1 <= days <= 365:
        raise ValueError("days must be 1 to 365")
    return days, now_utc() - timedelta(days=days)


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def performance(rows: Sequence[asyncpg.Record], key: str) -> list[dict[str, Any]]:
    """Totals per angle or platform; engagement_rate is the pooled rate (all interactions
    over all impressions), avg_engagement_rate the mean of the posts' rates."""
    out = []
    for r in rows:
        interactions = int(r["likes"]) + int(r["comments"]) + int(r["shares"])
        impressions = int(r["impressions"])
        out.append(
            {
                key: r[key],
                "posts": r["posts"],
                "likes": int(r["likes"]),
                "comments": int(r["comments"]),
                "shares": int(r["shares"]),
                "impressions": impressions,
                "engagement_rate": interactions / impressions if impressions else 0.0,
                "avg_engagement_rate": float(r["avg_engagement_rate"] or 0.0),
            }
        )
    return out


def post_json(post: PublishedPost) -> dict[str, Any]:
    return {
        "post_id": str(post.id),
        "organization_id": str(post.organization_id),
        "pending_post_id": str(post.pending_post_id),
        "run_id": str(post.run_id),
        "brand_profile_id": str(post.brand_profile_id),
        "social_account_id": str(post.social_account_id),
        "platform": post.platform,
        "angle": post.angle,
        "content": post.content,
        "media": [m.as_json() for m in post.media],
        "hashtags": list(post.hashtags),
        "angle_reason": post.angle_reason,
        "external_id": post.external_id,
        "external_url": post.external_url,
        "published_at": _time(post.published_at),
        "likes": post.likes,
        "comments": post.comments,
        "shares": post.shares,
        "impressions": post.impressions,
        "engagement_rate": post.engagement_rate,
        "deleted_at": _time(post.deleted_at),
    }


def routes(runtime: ServiceRuntime) -> Sequence[JsonRoute]:
    async def angle_performance(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        brand = path_id(path, "brand")
        days, since = _since(query)
        async with runtime.db.pool.acquire() as conn:
            owner = await projections.brand_owner(conn, brand)
            if owner is None:
                return JsonResponse(404, {"error": "no such brand"})
            rows = await _POSTS.angle_performance(conn, brand, since)
        return JsonResponse(
            200,
            {"brand_profile_id": str(brand), "days": days, "angles": performance(rows, "angle")},
            organization=owner,
        )

    async def platform_performance(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        days, since = _since(query)
        async with runtime.db.pool.acquire() as conn:
            rows = await _POSTS.platform_performance(conn, org, since)
        return JsonResponse(
            200,
            {"organization_id": str(org), "days": days, "platforms": performance(rows, "platform")},
            organization=org,
        )

    async def overview(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        days, since = _since(query)
        async with runtime.db.pool.acquire() as conn:
            by_platform = await _POSTS.posts_by_platform(conn, org, since)
        return JsonResponse(
            200,
            {
                "organization_id": str(org),
                "days": days,
                "posts": sum(by_platform.values()),
                "posts_by_platform": by_platform,
            },
            organization=org,
        )

    async def get_post(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        post_id = path_id(path, "post")
        async with runtime.db.pool.acquire() as conn:
            row = await _POSTS.post(conn, post_id)
        if row is None:
            return JsonResponse(404, {"error": "no such post"})
        return JsonResponse(200, post_json(row), organization=row.organization_id)

    async def get_pending_post(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        pending_id = path_id(path, "pending post")
        async with runtime.db.pool.acquire() as conn:
            row = await _PENDING_POSTS.pending_post(conn, pending_id)
            if row is None:
                return JsonResponse(404, {"error": "no such pending post"})
            attempts = await _PENDING_POSTS.attempts_of(conn, [pending_id])
            posts = {p["platform"]: p for p in await _POSTS.posts_of_pending_post(conn, pending_id)}
        return JsonResponse(
            200,
            {
                "pending_post_id": str(row["id"]),
                "organization_id": str(row["organization_id"]),
                "status": row["status"],
                "run_id": str(row["run_id"]) if row["run_id"] else None,
                "brand_profile_id": str(row["brand_profile_id"]) if row["brand_profile_id"] else None,
                "platforms": list(row["platforms"] or []),
                "media": list(row["media"] or []),
                "waiting_for": _waiting_for(row),
                "debit": row["debit"],
                "approval": row["approval"],
                "requires_approval": row["requires_approval"],
                "publishing_at": _time(row["publishing_at"]),
                "completed_at": _time(row["completed_at"]),
                # A completion that failed (retried alone with backoff, then ended PUBLISH_FAILED).
                "completion_failures": row["completion_failures"],
                "completion_error": row["completion_error"],
                "platform_results": [
                    {
                        "platform": a.platform,
                        "status": _shown_status(a.status),
                        "social_account_id": str(a.social_account_id) if a.social_account_id else None,
                        "failure_reason": a.failure_reason,
                        "failure_detail": a.failure_detail,
                        # Put off by the platform's rate limit until retry_at (still PENDING).
                        "retry_at": _time(a.retry_at) if _shown_status(a.status) == "PENDING" else None,
                        "deferral_reason": a.deferral_reason if _shown_status(a.status) == "PENDING" else None,
                        "post_id": str(posts[a.platform]["id"]) if a.platform in posts else None,
                        "external_url": posts[a.platform]["external_url"] if a.platform in posts else None,
                    }
                    for a in attempts
                ],
            },
            organization=row["organization_id"],
        )

    async def account_brands(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        account_id = path_id(path, "social account")
        async with runtime.db.pool.acquire() as conn:
            found = await _ACCOUNTS.account_brands(conn, account_id)
        if found is None:
            return JsonResponse(404, {"error": "no such social account"})
        account, links = found
        return JsonResponse(
            200,
            {
                "social_account_id": str(account_id),
                "organization_id": str(account["organization_id"]),
                "platform": account["platform"],
                "is_active": account["is_active"],
                "deleted_at": _time(account["deleted_at"]),
                "brands": [
                    {
                        "brand_profile_id": str(link["brand_profile_id"]),
                        "name": link["name"],
                        "is_default": link["is_default"],
                        "linked_at": _time(link["linked_at"]),
                        "brand_deleted_at": _time(link["brand_deleted_at"]),
                    }
                    for link in links
                ],
            },
            organization=account["organization_id"],
        )

    return [
        JsonRoute("/brands/{id}/angle-performance", angle_performance),
        JsonRoute("/organizations/{id}/platform-performance", platform_performance),
        JsonRoute("/organizations/{id}/overview", overview),
        JsonRoute("/posts/{id}", get_post),
        JsonRoute("/pending-posts/{id}", get_pending_post),
        JsonRoute("/social-accounts/{id}/brands", account_brands),
    ]


def _shown_status(status: str) -> str:
    """An attempt's status as readers see it: QUEUED and SENT (whether a call may have gone out,
    which the lease keeps for the next claim: `adapters/leases.py`) are both still PENDING."""
    return "PENDING" if status in ("QUEUED", "SENT") else status


def _waiting_for(row: asyncpg.Record) -> list[str]:
    """What a WAITING pending post still needs, so no one has to guess."""
    if row["status"] != "WAITING":
        return []
    missing = []
    if not row["has_post"]:
        missing.append("PendingPostCreated")
    if row["debit"] is None:
        missing.append("CreditsDebited")
    if row["requires_approval"] and row["approval"] is None:
        missing.append("PendingPostApproved")
    return missing
