"""Content and run deadlines (issue 19): a run whose deadline passed before content drafted it
ends TIMED_OUT undrafted, once; RunDeadlinePassed ends a run content never saw (its ScheduleDue
dead-lettered) and is nothing for one content drafted (billing or the publisher holds it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BODY = "Cold brew steeps for sixteen hours in the fridge: smooth, sweet and low in acid, ready when you are."


def _passed(t: Any, run_id: str) -> Any:
    return t.event("RunDeadlinePassed", run_id=run_id, schedule_id=t.schedule_id, brand_profile_id=t.brand)


async def test_a_run_due_past_its_deadline_ends_timed_out_without_a_draft(h: Any) -> None:
    t = await h.tenant()
    await t.material(BODY)
    late = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    found = await t.run(deadline=late)
    assert found["PendingPostCreated"] == [] and found["ScheduleRunSkipped"] == []
    [completed] = found["ScheduleRunCompleted"]
    assert completed["data"]["outcome"] == "TIMED_OUT" and completed["_topic"] == "t.analytics.events"
    # The material was not used: the next run in time drafts it.
    in_time = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert h.drafted(await t.run(deadline=in_time))["data"]["deadline"] is not None


async def test_run_deadline_passed_ends_only_a_run_content_never_saw(h: Any) -> None:
    t = await h.tenant()
    await t.material(BODY)
    drafted = await t.run()
    run_id = h.drafted(drafted)["data"]["run_id"]
    assert await h.send(_passed(t, run_id), "scheduler.events") == "handled"
    assert (await t.outcome(run_id))["ScheduleRunCompleted"] == []  # drafted: not content's to end

    unseen = str(uuid.uuid4())
    assert await h.send(_passed(t, unseen), "scheduler.events") == "handled"
    assert await h.send(_passed(t, unseen), "scheduler.events") == "handled"  # told twice: ended once
    [completed] = (await t.outcome(unseen))["ScheduleRunCompleted"]
    assert completed["data"]["outcome"] == "TIMED_OUT"
    # Its ScheduleDue, replayed from the dead letters later, finds it handled.
    replayed = await t.outcome(t.due(run_id=unseen).data["run_id"])
    assert await h.send(t.due(run_id=unseen), "scheduler.events") == "handled"
    assert (await t.outcome(unseen))["PendingPostCreated"] == replayed["PendingPostCreated"] == []


async def test_another_organizations_deadline_for_a_run_is_refused(h: Any) -> None:
    owner, other = await h.tenant(), await h.tenant()
    await owner.material(BODY)
    run_id = h.drafted(await owner.run())["data"]["run_id"]
    assert await h.send(_passed(other, run_id), "scheduler.events") == "dead_lettered"
