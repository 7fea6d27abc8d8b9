"""Manual mode beyond approve and reject, end to end through Kafka: a draft nobody decides in
time expires (refunded whole, one outcome EXPIRED) and a late approval changes nothing; a
reviewer's edit is checked like a draft, refused with a reason (the draft stays waiting) or
published as edited. The test stack runs a schedule's approval minute as one second
(`CONTENT_APPROVAL_MINUTE_S`, FAST_SERVICE_ENV)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Callable
from datetime import datetime

import pytest

from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.services import ServiceSet

pytestmark = pytest.mark.e2e

COFFEE = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
GRIND = "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."
PLATFORMS = ["MASTODON", "BLUESKY", "LINKEDIN"]


def _late_decisions(hopcast: ServiceSet) -> float:
    """The publisher's count of decisions that came after their draft expired."""
    with urllib.request.urlopen(hopcast.url("publisher", "/metrics"), timeout=5) as response:  # noqa: S310 (127.0.0.1)
        text = response.read().decode()
    found = re.findall(r'^hopcast_publisher_late_decisions_total\{decision="approved"\} (\S+)$', text, re.M)
    return float(found[0]) if found else 0.0


async def _waiting_draft(t: Tenant, dashboard: Dashboard, schedule: str) -> tuple[str, dict[str, object]]:
    """Trigger a run of a manual schedule: its run id and its draft, once billing debited it."""
    run = await t.trigger(schedule)
    [draft] = await dashboard.wait(lambda: dashboard.events("PendingPostCreated", run=run))
    await dashboard.wait(lambda: dashboard.events("CreditsDebited", run=run))
    return run, draft


async def test_an_undecided_draft_expires_refunded_whole_and_a_late_approval_changes_nothing(
    tenant: Callable[[], Tenant], dashboard: Dashboard, hopcast: ServiceSet
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=tuple(PLATFORMS), materials=(COFFEE,))
    schedule = await t.schedule(PLATFORMS, mode="manual", approval_ttl_minutes=3)  # 3 s here
    await t.landed()

    run, draft = await _waiting_draft(t, dashboard, schedule)
    deadline = datetime.fromisoformat(str(draft["data"]["approval_deadline"]))  # type: ignore[index]
    drafted = datetime.fromisoformat(str(draft["time"]))
    assert 2.0 <= (deadline - drafted).total_seconds() <= 4.0
    pending = str(draft["data"]["pending_post_id"])  # type: ignore[index]
    assert await t.credits() == 297  # 1 + 2 for three platforms

    assert await dashboard.outcome(run, within=30) == "EXPIRED"
    [expired] = dashboard.events("PendingPostExpired", run=run, topic=PUBLISHER)
    assert expired["data"]["pending_post_id"] == pending
    assert datetime.fromisoformat(expired["data"]["approval_deadline"]) == deadline
    [refund] = await dashboard.wait(lambda: dashboard.events("CreditsRefunded", run=run))
    assert (refund["data"]["amount"], refund["data"]["balance_after"], refund["data"]["reason"]) == (
        3,
        300,
        "PENDING_POST_EXPIRED",
    )
    assert dashboard.board.runs[run].outcome == "EXPIRED"

    # A reviewer approves too late: counted, not applied, not dead-lettered.
    before = _late_decisions(hopcast)
    late = t.event("PendingPostApproved", pending_post_id=pending)
    await t.send(late)
    for _ in range(100):
        if _late_decisions(hopcast) > before:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the publisher never counted the late approval")
    await dashboard.settle(1.5)
    assert dashboard.events("PostPublished", run=run) == []
    assert len(dashboard.events("ScheduleRunCompleted", run=run, topic=ANALYTICS)) == 1
    assert len(dashboard.events("CreditsRefunded", run=run)) == 1
    assert not [d for d in dashboard.dead_letters() if str(late.id) in str(d)]
    status, body = await t.hopcast.get_json("publisher", f"/pending-posts/{pending}", organization=t.org)
    assert (status, body["status"], body["approval"]) == (200, "EXPIRED", None)
    assert await t.credits() == 300


async def test_an_edit_over_the_limit_or_too_close_to_a_recent_post_is_refused_and_a_good_one_published(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(COFFEE, GRIND))
    schedule = await t.schedule(["MASTODON", "BLUESKY"], mode="manual")
    await t.landed()
    _, first = await _waiting_draft(t, dashboard, schedule)
    run, draft = await _waiting_draft(t, dashboard, schedule)
    pending = str(draft["data"]["pending_post_id"])  # type: ignore[index]

    # Over Bluesky's 300 graphemes: refused, with the reason; nothing is approved.
    too_long = t.event("PendingPostApproved", pending_post_id=pending, texts={"BLUESKY": "Fresh coffee. " * 30})
    await t.send(too_long)
    [refused] = await dashboard.wait(lambda: dashboard.events("PendingPostEditRefused", run=run, topic=CONTENT))
    assert (refused["data"]["reason"], refused["data"]["platform"]) == ("TEXT_BREAKS_RULE", "BLUESKY")
    assert refused["data"]["approval_id"] == str(too_long.id)
    assert "over the limit of 300" in refused["data"]["detail"]

    # The organization's other draft, word for word: a near-duplicate, refused too.
    copy = str(first["data"]["content"])  # type: ignore[index]
    await t.send(t.event("PendingPostApproved", pending_post_id=pending, texts={"MASTODON": copy}))
    await dashboard.wait(lambda: len(dashboard.events("PendingPostEditRefused", run=run)) == 2 or None)
    assert dashboard.events("PendingPostEditRefused", run=run)[1]["data"]["reason"] == "NEAR_DUPLICATE"

    await dashboard.settle(1.0)
    assert dashboard.events("PostPublished", run=run) == []
    assert dashboard.events("ScheduleRunCompleted", run=run) == []
    status, body = await t.hopcast.get_json("publisher", f"/pending-posts/{pending}", organization=t.org)
    assert (status, body["status"], body["waiting_for"]) == (200, "WAITING", ["PendingPostApproved"])

    # Still waiting: a good edit is accepted and published.
    edited = "Roasted on Tuesday, in your cup by Friday: a kettle, a scale and five quiet minutes. #coffee"
    await t.send(t.event("PendingPostApproved", pending_post_id=pending, texts={"BLUESKY": edited}))
    [accepted] = await dashboard.wait(lambda: dashboard.events("PendingPostEditAccepted", run=run))
    assert accepted["data"]["texts"] == {"BLUESKY": edited}
    assert await dashboard.outcome(run) == "PUBLISHED"
    posts = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    assert sorted(p["data"]["platform"] for p in posts) == ["BLUESKY", "MASTODON"]
