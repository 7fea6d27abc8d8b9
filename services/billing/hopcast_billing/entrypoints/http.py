"""GET /organizations/{id}/credits, GET /organizations/{id}/ledger (paged, newest first) and
GET /organizations/{id}/overview (credits remaining by bucket, billing's part of the overview).

Each answer names its organization; the kernel's router sends it only to a token that may read it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from hopcast_billing.adapters.ledger import balance_of
from hopcast_billing.adapters.reads import ledger_page, subscription_of
from hopcast_shared.http import JsonResponse, JsonRoute, path_id
from hopcast_shared.service import ServiceRuntime


def routes(runtime: ServiceRuntime) -> Sequence[JsonRoute]:
    async def credits_of(org: uuid.UUID) -> dict[str, Any]:
        """The organization's buckets and its subscription's period: what /credits answers."""
        async with runtime.db.pool.acquire() as conn:
            balance = await balance_of(conn, org)
            sub = await subscription_of(conn, org)
        return {
            "organization_id": str(org),
            "balance": balance.total,
            "period_credits": balance.period,
            "topup_credits": balance.topup,
            "plan": sub["plan"] if sub else None,
            "period_start": sub["period_start"].isoformat() if sub else None,
            "period_end": sub["period_end"].isoformat() if sub else None,
        }

    async def credits(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        return JsonResponse(200, await credits_of(org), organization=org)

    async def overview(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        held = await credits_of(org)
        return JsonResponse(
            200,
            {
                "organization_id": held["organization_id"],
                "credits_remaining": held["balance"],
                # Spent first, and gone at period_end (no roll-over); top-ups are kept until used.
                "period_credits": held["period_credits"],
                "topup_credits": held["topup_credits"],
                "period_end": held["period_end"],
            },
            organization=org,
        )

    async def ledger_entries(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        try:
            limit = min(max(int(query.get("limit", "50")), 1), 500)
            before = int(query["before"]) if "before" in query else None
        except ValueError:
            raise ValueError("limit and before are integers") from None
        async with runtime.db.pool.acquire() as conn:
            rows = await ledger_page(conn, org, before=before, limit=limit)
        entries = [
            {
                "id": r["id"],
                "action": r["action"],
                "amount": r["amount"],
                "period_amount": r["period_amount"],
                "topup_amount": r["topup_amount"],
                "balance_after": r["balance_after"],
                "idempotency_key": r["idempotency_key"],
                "pending_post_id": str(r["pending_post_id"]) if r["pending_post_id"] else None,
                "run_id": str(r["run_id"]) if r["run_id"] else None,
                "platform": r["platform"],
                "subscription_id": str(r["subscription_id"]) if r["subscription_id"] else None,
                "description": r["description"],
                "created_at": r["created_at"].isoformat(),
            }
            for r in rows
        ]
        next_before = entries[-1]["id"] if len(entries) == limit else None
        return JsonResponse(
            200, {"organization_id": str(org), "entries": entries, "next_before": next_before}, organization=org
        )

    return [
        JsonRoute("/organizations/{id}/credits", credits),
        JsonRoute("/organizations/{id}/ledger", ledger_entries),
        JsonRoute("/organizations/{id}/overview", overview),
    ]
