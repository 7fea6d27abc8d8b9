"""GET /schedules/{id}: status, next run times, last outcome, missed runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hopcast_scheduler.adapters.repository import recurrence_of, schedule
from hopcast_scheduler.domain.recurrence import format_utc, next_runs
from hopcast_scheduler.handlers import now_utc
from hopcast_shared.http import JsonResponse, JsonRoute
from hopcast_shared.service import ServiceRuntime


def routes(runtime: ServiceRuntime) -> Sequence[JsonRoute]:
    async def get_schedule(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        try:
            schedule_id = uuid.UUID(path["id"])
        except ValueError:
            return JsonResponse(400, {"error": "schedule id must be a UUID"})
        async with runtime.db.pool.acquire() as conn:
            row = await schedule(conn, schedule_id)
        if row is None or row["deleted_at"] is not None:
            return JsonResponse(404, {"error": "no such schedule"})
        upcoming = next_runs(recurrence_of(row), now_utc(), 5)
        return JsonResponse(
            200,
            {
                "schedule_id": str(row["id"]),
                "organization_id": str(row["organization_id"]),
                "brand_profile_id": str(row["brand_profile_id"]),
                "status": row["status"],
                "is_active": row["is_active"],
                "timezone": row["timezone"],
                "times": list(row["times"]),
                "days_of_week": list(row["days_of_week"]),
                "next_run_at": format_utc(row["next_run_at"]) if row["next_run_at"] else None,
                "next_run_times": [format_utc(t) for t in upcoming],
                "last_outcome": row["last_outcome"],
                "last_run_at": format_utc(row["last_run_at"]) if row["last_run_at"] else None,
                "consecutive_errors": row["consecutive_errors"],
                "missed_runs": row["missed_runs"],
            },
        )

    return [JsonRoute("/schedules/{id}", get_schedule)]
