"""The scheduler's part of an organization's overview (issue 22): its active schedules and its
schedules by status, read through the kernel's HTTP layer with tokens on the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_scheduler.entrypoints.http import routes
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration


class _Runtime:
    def __init__(self, db: Database) -> None:
        self.db = db


async def test_the_overview_counts_active_schedules_and_each_status(
    scheduler_db: Database, scheduler_tenant: Any, http_reads: Any
) -> None:
    a = await scheduler_tenant().create()
    b = await scheduler_tenant().create()
    # a: one more ACTIVE, one paused, one switched off, one deleted (not counted at all).
    more = [str(uuid.uuid4()) for _ in range(4)]
    for schedule_id in more:
        created = a.event("ScheduleCreated", schedule_id=schedule_id, brand_profile_id=a.brand)
        assert await a.send(created) == "handled"
    assert await a.send(a.event("SchedulePaused", schedule_id=more[1])) == "handled"
    switched_off = a.event("ScheduleUpdated", schedule_id=more[2], brand_profile_id=a.brand, is_active=False)
    assert await a.send(switched_off) == "handled"
    assert await a.send(a.event("ScheduleDeleted", schedule_id=more[3])) == "handled"

    reads = http_reads(routes(_Runtime(scheduler_db)))  # type: ignore[arg-type]
    status, body = await reads.get(f"/organizations/{a.org}/overview", organizations=[a.org])
    assert status == 200, body
    assert body == {
        "organization_id": a.org,
        "active_schedules": 2,
        "schedules_by_status": {"ACTIVE": 2, "INACTIVE": 1, "PAUSED": 1},
    }
    status, body = await reads.get(f"/organizations/{b.org}/overview", organizations=[b.org])
    assert (status, body["active_schedules"], body["schedules_by_status"]) == (200, 1, {"ACTIVE": 1})


async def test_another_organizations_overview_is_404_and_no_token_401(
    scheduler_db: Database, scheduler_tenant: Any, http_reads: Any
) -> None:
    a = await scheduler_tenant().create()
    b = await scheduler_tenant().create()
    reads = http_reads(routes(_Runtime(scheduler_db)))  # type: ignore[arg-type]
    assert await reads.get(f"/organizations/{b.org}/overview", organizations=[a.org]) == (404, {"error": "not found"})
    assert (await reads.get(f"/organizations/{b.org}/overview"))[0] == 401
    assert (await reads.get("/organizations/not-a-uuid/overview", organizations=[a.org]))[0] == 400
