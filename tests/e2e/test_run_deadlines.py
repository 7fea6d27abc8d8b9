"""Run deadlines end to end (issue 19): a run whose holder is stopped past the deadline ends
TIMED_OUT once it returns, refunded, with exactly one ScheduleRunCompleted; and its timeline on
the scheduler (GET /runs/{id}) shows the stages the events reported.

In a world of its own (`deadline_world`: the four services with a run deadline of a few
seconds), since a test here stops a service for longer than a run may take.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.services import ServiceSet, start_services
from hopcast_stack.upstream import Upstream

pytestmark = pytest.mark.e2e

Deadlines = tuple[ServiceSet, Dashboard, Upstream]

BEANS = "Our single-origin beans come from one farm in Huila, picked by hand and dried on raised beds for three weeks."
FILTER = "Rinse a paper filter with hot water before you brew: it takes the papery taste away and warms the cup."


def _tenant(world: Deadlines) -> Tenant:
    services, board, upstream = world
    return Tenant(upstream, board, services)


async def _stopped(services: ServiceSet, name: str) -> None:
    process = next(p for p in services.processes if p.name == name)
    assert await asyncio.to_thread(process.stop), f"{name} was not running"


async def _started(services: ServiceSet, name: str) -> None:
    process = next(p for p in services.processes if p.name == name)
    await start_services([process], services.env, timeout_s=90)


async def _due_run(board: Dashboard, schedule: str, before: set[str]) -> str:
    """The run a trigger started, from its ScheduleDue (content may be stopped)."""

    def new_runs() -> list[str]:
        return [
            e["data"]["run_id"]
            for e in board.events("ScheduleDue")
            if e["data"]["schedule_id"] == schedule and e["data"]["run_id"] not in before
        ]

    [run] = await board.wait(new_runs)
    return str(run)


async def test_a_run_whose_content_service_is_stopped_past_the_deadline_ends_timed_out_undrafted(
    deadline_world: Deadlines,
) -> None:
    services, board, _ = deadline_world
    t = _tenant(deadline_world)
    await t.create(credits=300, accounts=("MASTODON",), materials=(BEANS,))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()

    await _stopped(services, "content")
    try:
        await t.send(t.event("ScheduleTriggerRequested", schedule_id=schedule))
        run = await _due_run(board, schedule, set())
        [due] = board.events("ScheduleDue", run=run)
        assert due["data"]["deadline"] is not None  # content learns the deadline with the run
        [passed] = await board.wait(lambda: board.events("RunDeadlinePassed", run=run), within=30)
        assert passed["data"]["brand_profile_id"] == t.brand
        assert board.events("ScheduleRunCompleted", run=run) == []  # nobody ends it while content is down
    finally:
        await _started(services, "content")

    assert await board.outcome(run) == "TIMED_OUT"
    await board.settle(2.0)
    assert len(board.events("ScheduleRunCompleted", run=run)) == 1
    # Content ended it before drafting: nothing drafted, debited or published, credits untouched.
    for kind in ("PendingPostCreated", "CreditsDebited", "PostPublished", "PostPublishFailed"):
        assert board.events(kind, run=run) == [], kind
    assert await t.credits() == 300
    assert board.board.runs[run].outcome == "TIMED_OUT"  # the live view shows it

    status, timeline = await services.get_json("scheduler", f"/runs/{run}", organization=t.org)
    assert status == 200, timeline
    assert (timeline["outcome"], timeline["schedule_id"], timeline["credits"]["net"]) == ("TIMED_OUT", schedule, 0)
    stages = [s["stage"] for s in timeline["stages"]]
    assert stages[0] == "ScheduleDue" and stages[-1] == "ScheduleRunCompleted", stages
    assert "RunDeadlinePassed" in stages and "PendingPostCreated" not in stages
    # Another organization's reader gets the same 404 as a missing run.
    other = await services.get_json("scheduler", f"/runs/{run}", organization=_tenant(deadline_world).org)
    assert other[0] == 404


async def test_a_run_whose_publisher_is_stopped_past_the_deadline_ends_timed_out_and_refunded(
    deadline_world: Deadlines,
) -> None:
    services, board, _ = deadline_world
    t = _tenant(deadline_world)
    await t.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(FILTER,))
    schedule = await t.schedule(["MASTODON", "BLUESKY"])
    await t.landed()

    await _stopped(services, "publisher")
    stopped_at = time.monotonic()
    try:
        run = await t.trigger(schedule)
        [debit] = await board.wait(lambda: board.events("CreditsDebited", run=run))
        assert debit["data"]["amount"] == 3
        await board.wait(lambda: board.events("RunDeadlinePassed", run=run), within=30)
    finally:
        await _started(services, "publisher")
    assert time.monotonic() - stopped_at > 3  # the publisher was down past the deadline

    assert await board.outcome(run) == "TIMED_OUT"
    await board.wait(lambda: sum(e["data"]["amount"] for e in board.events("CreditsRefunded", run=run)) == 3)
    await board.settle(2.0)
    assert len(board.events("ScheduleRunCompleted", run=run)) == 1
    # Nothing was posted after the deadline; each platform failed TIMED_OUT; the whole debit came back.
    assert board.events("PostPublished", run=run) == []
    failed = board.events("PostPublishFailed", run=run)
    assert sorted((e["data"]["platform"], e["data"]["reason"]) for e in failed) == [
        ("BLUESKY", "TIMED_OUT"),
        ("MASTODON", "TIMED_OUT"),
    ]
    assert sum(e["data"]["amount"] for e in board.events("CreditsRefunded", run=run)) == 3
    assert await t.credits() == 300

    status, timeline = await services.get_json("scheduler", f"/runs/{run}", organization=t.org)
    assert status == 200, timeline
    assert timeline["outcome"] == "TIMED_OUT"
    assert timeline["credits"] == {"debited": 3, "refunded": 3, "net": 0}
    stages = [s["stage"] for s in timeline["stages"]]
    for stage in ("ScheduleDue", "PendingPostCreated", "CreditsDebited", "RunDeadlinePassed", "CreditsRefunded"):
        assert stage in stages, (stage, stages)
    assert stages.index("PendingPostCreated") < stages.index("CreditsDebited") < stages.index("RunDeadlinePassed")


async def test_a_run_that_ends_in_time_is_never_told_its_deadline(deadline_world: Deadlines) -> None:
    """The watch tells only open runs: a run published well within the deadline gets no
    RunDeadlinePassed, even once the deadline is long past."""
    services, board, _ = deadline_world
    t = _tenant(deadline_world)
    await t.create(credits=300, accounts=("MASTODON",), materials=(BEANS,))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()
    run = await t.trigger(schedule)
    assert await board.outcome(run) == "PUBLISHED"
    await asyncio.sleep(8)  # past the deadline of 6 s
    assert board.events("RunDeadlinePassed", run=run) == []
    status, timeline = await services.get_json("scheduler", f"/runs/{run}", organization=t.org)
    assert status == 200 and timeline["outcome"] == "PUBLISHED" and timeline["deadline_passed_at"] is None
    assert [s["platform"] for s in timeline["stages"] if s["stage"] == "PostPublished"] == ["MASTODON"]
