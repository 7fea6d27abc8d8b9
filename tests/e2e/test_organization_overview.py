"""The organization overview (issue 22, the seed's getOrgDashboard) assembled from the four
running services' `GET /organizations/{id}/overview` after a few runs, as a dashboard does it
(hopcast_stack.overview, docs/dashboard.md): active brands, ready materials, active schedules,
posts of the last 30 days, credits by bucket; another organization's parts refused; and the live
view's poller showing the same figures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.overview import PARTS, OrganizationOverview, local_get, poll_overviews, read_overview
from hopcast_stack.services import ServiceSet
from hopcast_stack.view import Board, OrganizationView, overview_text

pytestmark = pytest.mark.e2e

BODIES = (
    "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand.",
    "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference.",
    "Our new Ethiopian single origin tastes of blueberry and jasmine. It arrives in shops next Monday.",
)


def _reader(hopcast: ServiceSet, organizations: list[str]) -> Any:
    return local_get({name: hopcast.port(name) for name in PARTS}, hopcast.token(organizations))


async def _settled(
    hopcast: ServiceSet, org: str, check: Callable[[OrganizationOverview], bool]
) -> OrganizationOverview:
    """The overview once `check` holds (the services apply the runs' last events on their own)."""
    get = _reader(hopcast, [org])
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        overview = await read_overview(get, org)
        if check(overview) or asyncio.get_running_loop().time() > deadline:
            return overview
        await asyncio.sleep(0.3)


async def test_the_overview_assembled_from_the_four_services_after_a_few_runs(
    tenant: Callable[[], Tenant], dashboard: Dashboard, hopcast: ServiceSet
) -> None:
    a, b = tenant(), tenant()
    await a.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=BODIES)
    await b.create(credits=None, accounts=("MASTODON",), materials=BODIES[:1])
    await a.send(a.event("CreditsGranted", grant_id=str(uuid.uuid4()), amount=5))
    schedule = await a.schedule(["MASTODON", "BLUESKY"])
    paused = await a.schedule(["MASTODON"])
    await a.send(a.event("SchedulePaused", schedule_id=paused))
    await a.landed()
    for _ in range(2):
        run = await a.trigger(schedule)
        assert await dashboard.outcome(run, within=60) == "PUBLISHED"

    # Two runs on two platforms: 4 posts, 2 of the 3 materials used (each usable once),
    # 2 x (GENERATE 1 + PUBLISH 2) taken from the period's 300; the top-up untouched.
    overview = await _settled(hopcast, a.org, lambda o: o.ready_materials == 1 and o.posts_last_30_days == 4)
    assert overview.active_brands == 1
    assert overview.ready_materials == 1
    assert (overview.active_schedules, overview.schedules_by_status) == (1, {"ACTIVE": 1, "PAUSED": 1})
    assert (overview.posts_last_30_days, overview.posts_by_platform) == (4, {"BLUESKY": 2, "MASTODON": 2})
    assert (overview.credits_remaining, overview.period_credits, overview.topup_credits) == (299, 294, 5)
    assert overview.period_end is not None
    assert overview.credits_remaining == await a.credits()

    quiet = await _settled(hopcast, b.org, lambda o: o.ready_materials == 1)
    assert (quiet.active_brands, quiet.ready_materials, quiet.active_schedules, quiet.posts_last_30_days) == (
        1,
        1,
        0,
        0,
    )
    assert (quiet.credits_remaining, quiet.period_end) == (0, None)

    # a's token reads none of b's four parts: each is the same 404 as an unknown organization.
    get = _reader(hopcast, [a.org])
    for name in PARTS:
        status, body = await get(name, f"/organizations/{b.org}/overview")
        assert (status, body) == (404, None), name

    # The live view of `make run` polls the same reads into its board and shows them.
    board = Board()
    board.organizations[a.org] = OrganizationView(a.org)
    ports = {name: hopcast.port(name) for name in PARTS}
    poller = asyncio.create_task(
        poll_overviews(lambda: board.organizations, board.overviews, ports, key_folder=hopcast.state_dir, every_s=0.2)
    )
    try:
        await dashboard.wait(lambda: board.overviews.get(a.org))
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
    assert board.overviews[a.org] == overview
    assert overview_text(overview) == "brands 1 · ready 1 · schedules 1 · posts/30d 4 · credits 294+5"
