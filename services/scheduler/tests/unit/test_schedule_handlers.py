"""The scheduler's service layer against an in-memory repository: given these schedules and
events, expect those runs, events and statuses. The same handlers run on the real database in
tests/integration; here the repository is a fake that subclasses the real one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from hopcast_scheduler.adapters.repository import ScheduleRepository
from hopcast_scheduler.adapters.runs import RunRepository, Stage
from hopcast_scheduler.domain.schedules import Schedule
from hopcast_scheduler.service_layer.handlers import (
    SchedulerDeps,
    claim_and_emit,
    run_completed,
    schedule_paused,
    trigger_requested,
)
from hopcast_shared.contract import SchedulePaused, ScheduleRunCompleted, ScheduleTriggerRequested
from hopcast_shared.contract.examples import example_event
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.outbox import OutboxRow
from hopcast_shared.settings import KafkaSettings

ORG = uuid.uuid4()
NOW = datetime(2027, 6, 2, 9, 5, tzinfo=UTC)


class FakeRepository(ScheduleRepository):
    """Schedules and runs in dicts; no transaction, no SQL."""

    def __init__(self, *schedules: Schedule) -> None:
        super().__init__(cast(Any, None))
        self.schedules = {s.id: s for s in schedules}
        self.runs: dict[uuid.UUID, dict[str, Any]] = {}
        self.outbox: list[OutboxRow] = []
        self.live = True  # the brand and organization of every schedule

    async def schedule(self, schedule_id: uuid.UUID, *, lock: bool = False) -> Schedule | None:
        return self.schedules.get(schedule_id)

    async def trigger_target(self, schedule_id: uuid.UUID) -> tuple[Schedule, bool] | None:
        schedule = self.schedules.get(schedule_id)
        return None if schedule is None else (schedule, self.live)

    async def update_schedule(self, schedule_id: uuid.UUID, **fields: Any) -> None:
        self.schedules[schedule_id] = replace(self.schedules[schedule_id], **fields)

    async def claim_due_schedules(self, now: datetime, limit: int) -> list[Schedule]:
        due = [s for s in self.schedules.values() if s.next_run_at and s.next_run_at <= now and s.status == "ACTIVE"]
        return sorted(due, key=lambda s: cast(datetime, s.next_run_at))[:limit]

    async def insert_runs(
        self, runs: Sequence[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, str]]
    ) -> set[uuid.UUID]:
        taken = {(r["schedule_id"], r["due_at"]) for r in self.runs.values()}
        inserted = set()
        for run_id, schedule_id, org, due_at, kind in runs:
            if (schedule_id, due_at) not in taken:
                self.runs[run_id] = {
                    "schedule_id": schedule_id,
                    "org": org,
                    "due_at": due_at,
                    "kind": kind,
                    "outcome": None,
                }
                inserted.add(run_id)
        return inserted

    async def write_outbox(self, rows: Sequence[OutboxRow]) -> None:
        self.outbox += rows

    async def advance_schedules(
        self, updates: Sequence[tuple[uuid.UUID, datetime | None, int, datetime | None]]
    ) -> None:
        for schedule_id, next_run_at, missed, last_run_at in updates:
            s = self.schedules[schedule_id]
            self.schedules[schedule_id] = replace(
                s, next_run_at=next_run_at, missed_runs=s.missed_runs + missed, last_run_at=last_run_at or s.last_run_at
            )

    async def insert_trigger_run(
        self, run_id: uuid.UUID, schedule: Schedule, due_at: datetime, trigger_event_id: uuid.UUID
    ) -> bool:
        self.runs[run_id] = {
            "schedule_id": schedule.id,
            "org": schedule.organization_id,
            "due_at": due_at,
            "outcome": None,
        }
        return True

    async def complete_run(
        self, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, completed_at: datetime
    ) -> Schedule | None:
        run = self.runs.get(run_id)
        if run is None or run["org"] != org_id or run["outcome"] is not None:
            return None
        run["outcome"] = outcome
        return self.schedules[run["schedule_id"]]

    async def run_owned_by_another(self, run_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        return run_id in self.runs and self.runs[run_id]["org"] != org_id


def _schedule(**changes: Any) -> Schedule:
    schedule = Schedule(
        id=uuid.uuid4(),
        organization_id=ORG,
        brand_profile_id=uuid.uuid4(),
        timezone="Europe/Berlin",
        times=("11:00",),
        days_of_week=tuple(range(7)),
        platforms=("TWITTER", "LINKEDIN"),
        missed_run_policy="ONCE",
        is_active=True,
        status="ACTIVE",
        next_run_at=datetime(2027, 6, 2, 9, 0, tzinfo=UTC),  # 11:00 in Berlin
    )
    return replace(schedule, **changes)


class FakeRuns(RunRepository):
    """The stages recorded, in memory."""

    def __init__(self) -> None:
        self.stages: list[tuple[uuid.UUID, Stage]] = []

    async def record_stage(self, run_id: uuid.UUID, org_id: uuid.UUID, stage: Stage) -> bool:
        self.stages.append((run_id, stage))
        return True


def _deps(repo: FakeRepository) -> SchedulerDeps:
    runs = FakeRuns()
    return SchedulerDeps(repository=lambda conn: repo, clock=lambda: NOW, runs=lambda conn: runs)


def _ctx(type_name: str, model: Any, organization_id: uuid.UUID = ORG, **data: Any) -> tuple[EventContext, Any]:
    envelope = example_event(type_name, organization_id=organization_id, **data)
    return EventContext(cast(Any, None), envelope, "scheduler", KafkaSettings()), model.model_validate(envelope.data)


def _events(rows: Sequence[OutboxRow]) -> list[dict[str, Any]]:
    return [json.loads(row.payload) for row in rows]


async def test_a_due_schedule_fires_one_schedule_due_and_moves_to_its_next_run() -> None:
    schedule = _schedule()
    repo = FakeRepository(schedule)

    assert await claim_and_emit(_deps(repo), cast(Any, None), KafkaSettings(), now=NOW, limit=10) == 1

    [due] = _events(repo.outbox)
    assert due["type"] == "ScheduleDue" and due["organizationid"] == str(ORG)
    assert due["data"]["schedule_id"] == str(schedule.id) and due["data"]["platforms"] == ["TWITTER", "LINKEDIN"]
    assert due["correlationid"] == due["data"]["run_id"]  # the run is the saga
    advanced = repo.schedules[schedule.id]
    assert advanced.next_run_at == schedule.next_run_at + timedelta(days=1)
    assert advanced.last_run_at == schedule.next_run_at
    # Claimed again at the same instant: nothing is due any more.
    assert await claim_and_emit(_deps(repo), cast(Any, None), KafkaSettings(), now=NOW, limit=10) == 0


async def test_five_failed_runs_in_a_row_pause_the_schedule_with_error() -> None:
    schedule = _schedule(consecutive_errors=4)
    repo = FakeRepository(schedule)
    run_id = uuid.uuid4()
    repo.runs[run_id] = {"schedule_id": schedule.id, "org": ORG, "due_at": NOW, "outcome": None}
    ctx, data = _ctx("ScheduleRunCompleted", ScheduleRunCompleted, run_id=str(run_id), outcome="PUBLISH_FAILED")

    await run_completed(_deps(repo), ctx, data)
    await run_completed(_deps(repo), ctx, data)  # recorded once

    after = repo.schedules[schedule.id]
    assert (after.status, after.consecutive_errors, after.last_outcome) == ("ERROR", 5, "PUBLISH_FAILED")


async def test_another_organizations_schedule_is_refused_and_left_alone() -> None:
    schedule = _schedule()
    repo = FakeRepository(schedule)
    ctx, data = _ctx("SchedulePaused", SchedulePaused, organization_id=uuid.uuid4(), schedule_id=str(schedule.id))

    with pytest.raises(PermanentError, match="belongs to another organization"):
        await schedule_paused(_deps(repo), ctx, data)
    assert repo.schedules[schedule.id].status == "ACTIVE"


async def test_a_trigger_fires_now_unless_the_brand_or_organization_is_inactive() -> None:
    schedule = _schedule()
    repo = FakeRepository(schedule)
    ctx, data = _ctx("ScheduleTriggerRequested", ScheduleTriggerRequested, schedule_id=str(schedule.id))

    await trigger_requested(_deps(repo), ctx, data)

    [due] = _events(ctx.outbox)
    assert due["type"] == "ScheduleDue" and due["data"]["due_at"] == "2027-06-02T09:05:00Z"
    repo.live = False
    quiet, data = _ctx("ScheduleTriggerRequested", ScheduleTriggerRequested, schedule_id=str(schedule.id))
    await trigger_requested(_deps(repo), quiet, data)
    assert quiet.outbox == []
