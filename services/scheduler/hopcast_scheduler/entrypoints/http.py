"""GET /schedules/{id}: status, next run times, last outcome, missed runs. GET /runs/{id}: a run's
timeline: due time, deadline, each stage the events reported, outcome, credits moved.
GET /organizations/{id}/overview: the organization's active schedules, and its schedules by status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hopcast_scheduler.adapters.overview import schedules_by_status
from hopcast_scheduler.adapters.repository import ScheduleRepository
from hopcast_scheduler.adapters.runs import Stage, timeline
from hopcast_scheduler.domain.recurrence import format_utc, next_runs
from hopcast_scheduler.service_layer.handlers import SchedulerDeps, now_utc
from hopcast_shared.http import JsonResponse, JsonRoute, path_id
from hopcast_shared.service import ServiceRuntime


def _time(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


def routes(runtime: ServiceRuntime, deps: SchedulerDeps | None = None) -> Sequence[JsonRoute]:
    run_deadline = (deps or SchedulerDeps()).run_deadline

    async def get_schedule(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        schedule_id = path_id(path, "schedule")
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

    async def get_run(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        run_id = path_id(path, "run")
        async with runtime.db.pool.acquire() as conn:
            found = await timeline(conn, run_id, run_deadline)
        if found is None:
            return JsonResponse(404, {"error": "not found"})
        run, reported = found
        # The scheduler's own stages (the run fired, its deadline passed) beside the reported ones.
        own = [Stage("ScheduleDue", run["created_at"])]
        if run["deadline_passed_at"] is not None:
            own.append(Stage("RunDeadlinePassed", run["deadline_passed_at"]))
        stages = sorted([*own, *reported], key=lambda s: s.at)
        debited = -sum(s.credits for s in stages if s.credits is not None and s.credits < 0)
        refunded = sum(s.credits for s in stages if s.credits is not None and s.credits > 0)
        return JsonResponse(
            200,
            {
                "run_id": str(run["run_id"]),
                "organization_id": str(run["organization_id"]),
                "schedule_id": str(run["schedule_id"]),
                "brand_profile_id": str(run["brand_profile_id"]),
                "kind": run["kind"],
                "due_at": _time(run["due_at"]),
                "started_at": _time(run["created_at"]),
                "pending_post_id": str(run["pending_post_id"]) if run["pending_post_id"] else None,
                "waiting_for_reviewer_since": _time(run["approval_wait_since"]),
                "deadline": None if run["approval_wait_since"] else _time(run["deadline"]),
                "deadline_passed_at": _time(run["deadline_passed_at"]),
                "stages": [
                    {
                        "stage": s.stage,
                        "at": _time(s.at),
                        **({"platform": s.platform} if s.platform else {}),
                        **({"detail": s.detail} if s.detail else {}),
                        **({"credits": s.credits} if s.credits is not None else {}),
                    }
                    for s in stages
                ],
                "outcome": run["outcome"],
                "completed_at": _time(run["completed_at"]),
                "credits": {"debited": debited, "refunded": refunded, "net": debited - refunded},
            },
            organization=run["organization_id"],
        )

    async def overview(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        async with runtime.db.pool.acquire() as conn:
            active, by_status = await schedules_by_status(conn, org)
        return JsonResponse(
            200,
            {"organization_id": str(org), "active_schedules": active, "schedules_by_status": by_status},
            organization=org,
        )

    return [
        JsonRoute("/schedules/{id}", get_schedule),
        JsonRoute("/runs/{id}", get_run),
        JsonRoute("/organizations/{id}/overview", overview),
    ]
