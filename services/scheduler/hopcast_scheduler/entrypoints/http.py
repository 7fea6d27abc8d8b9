"""GET /schedules/{id}: status, next run times, last outcome, missed runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hopcast_scheduler.adapters.repository import ScheduleRepository
from hopcast_scheduler.domain.recurrence import format_utc, next_runs
from hopcast_scheduler.service_layer.handlers import now_utc
from hopcast_shared.http import JsonResponse, JsonRoute
from hopcast_shared.service import ServiceRuntime


def routes(runtime: ServiceRuntime) -> Sequence[JsonRoute]:
    async def get_schedule(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        try:
            schedule_id = uuid.UUID(path["id"])
        except ValueError:
            return JsonResponse(400, {"error": "schedule id must be a UUID"})
        async with runtime.db.pool.acquire() as conn:
            schedule = await ScheduleRepository(conn).schedule(schedule_id)
        if schedule is None or schedule.deleted_at is not None:
            return JsonResponse(404, {"error": "no such schedule"})
        upcoming = next_runs(schedule.recurrence(), now_utc(), 5)
        return JsonResponse(
            200,
            {
                "schedule_id": str(schedule.id),
                "organization_id": str(schedule.organization_id),
                "brand_profile_id": str(schedule.brand_profile_id),
                "status": schedule.status,
                "is_active": schedule.is_active,
                "timezone": schedule.timezone,
                "times": list(schedule.times),
                "days_of_week": list(schedule.days_of_week),
                "next_run_at": format_utc(schedule.next_run_at) if schedule.next_run_at else None,
                "next_run_times": [format_utc(t) for t in upcoming],
                "last_outcome": schedule.last_outcome,
                "last_run_at": format_utc(schedule.last_run_at) if schedule.last_run_at else None,
                "consecutive_errors": schedule.consecutive_errors,
                "missed_runs": schedule.missed_runs,
            },
            organization=schedule.organization_id,
        )

    return [JsonRoute("/schedules/{id}", get_schedule)]
