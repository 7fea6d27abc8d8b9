"""The saga end to end, through Kafka only: given these facts on upstream.events, expect these
events on the outbound topics (DESIGN.md "The flow of one scheduled post")."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from hopcast_shared.topics import ANALYTICS, PUBLISHER
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.view import trace_id

pytestmark = pytest.mark.e2e

COFFEE = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
GRIND = "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."
KETTLE = (
    "Let the kettle rest thirty seconds after it boils: water just off the boil brings out sweetness, not bitterness."
)


async def test_autopilot_run_on_two_platforms_is_published_once_per_platform_and_debited_once(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(COFFEE,))
    schedule = await t.schedule(["MASTODON", "BLUESKY"])
    await t.landed()
    assert await t.credits() == 300

    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    await dashboard.settle()

    [draft] = dashboard.events("PendingPostCreated", run=run)
    assert draft["data"]["material_id"] == t.materials[0] and not draft["data"]["requires_approval"]
    assert "less than a week old" in draft["data"]["content"]
    posts = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    assert sorted((p["data"]["platform"], p["data"]["social_account_id"]) for p in posts) == sorted(
        [("BLUESKY", t.accounts["BLUESKY"]), ("MASTODON", t.accounts["MASTODON"])]
    )
    assert all(p["data"]["pending_post_id"] == draft["data"]["pending_post_id"] for p in posts)
    assert len({p["data"]["post_id"] for p in posts}) == 2
    # One debit: GENERATE 1 + PUBLISH 1 per platform.
    [debit] = dashboard.events("CreditsDebited", run=run)
    assert (debit["data"]["amount"], debit["data"]["balance_after"]) == (3, 297)
    assert dashboard.events("CreditsRefunded", run=run) == []
    assert dashboard.events("PostPublishFailed", run=run) == []
    assert await t.credits() == 297
    # The dashboard's view of the run agrees.
    view = dashboard.board.runs[run]
    assert (view.outcome, view.debited, view.platform_results) == (
        "PUBLISHED",
        3,
        {"MASTODON": "published", "BLUESKY": "published"},
    )


async def test_without_subscription_or_enough_credits_the_run_ends_insufficient_credits(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    never_paid, short = tenant(), tenant()
    await never_paid.create(credits=None, materials=(COFFEE,))
    await short.create(credits=2, materials=(COFFEE,))  # a post on two platforms costs 3
    schedules = [await never_paid.schedule(["MASTODON", "BLUESKY"]), await short.schedule(["MASTODON", "BLUESKY"])]
    await never_paid.landed()

    runs = [await never_paid.trigger(schedules[0]), await short.trigger(schedules[1])]
    assert [await dashboard.outcome(r) for r in runs] == ["INSUFFICIENT_CREDITS", "INSUFFICIENT_CREDITS"]
    await dashboard.settle()

    rejections = [dashboard.events("CreditsDebitRejected", run=r) for r in runs]
    assert [[(e["data"]["reason"], e["data"]["requested"], e["data"]["available"]) for e in r] for r in rejections] == [
        [("NO_SUBSCRIPTION", 3, 0)],
        [("INSUFFICIENT_CREDITS", 3, 2)],
    ]
    for run in runs:
        assert dashboard.events("CreditsDebited", run=run) == []
        assert dashboard.events("PostPublished", run=run) == []
        assert dashboard.events("PostPublishFailed", run=run) == []
    assert await short.credits() == 2


async def test_manual_mode_publishes_nothing_before_approval(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(COFFEE,))
    schedule = await t.schedule(["MASTODON", "BLUESKY"], mode="manual")
    await t.landed()

    run = await t.trigger(schedule)
    [draft] = await dashboard.wait(lambda: dashboard.events("PendingPostCreated", run=run))
    assert draft["data"]["requires_approval"] is True
    pending = draft["data"]["pending_post_id"]
    await dashboard.wait(lambda: dashboard.events("CreditsDebited", run=run))

    # The publisher holds the draft and its debit and waits for the approval alone.
    async def waiting_for_approval() -> bool:
        status, body = await t.hopcast.get_json("publisher", f"/pending-posts/{pending}", organization=t.org)
        return status == 200 and body["waiting_for"] == ["PendingPostApproved"]

    for _ in range(300):
        if await waiting_for_approval():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the publisher never held the draft and its debit")
    await dashboard.settle(1.5)
    assert dashboard.events("PostPublished", run=run) == []
    assert dashboard.events("ScheduleRunCompleted", run=run) == []
    assert dashboard.board.runs[run].awaiting_approval

    await t.send(t.event("PendingPostApproved", pending_post_id=pending))
    assert await dashboard.outcome(run) == "PUBLISHED"
    posts = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    assert sorted(p["data"]["platform"] for p in posts) == ["BLUESKY", "MASTODON"]


async def test_rejected_draft_ends_rejected_with_a_full_refund(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON", "BLUESKY", "LINKEDIN"), materials=(COFFEE,))
    schedule = await t.schedule(["MASTODON", "BLUESKY", "LINKEDIN"], mode="manual")
    await t.landed()

    run = await t.trigger(schedule)
    [debit] = await dashboard.wait(lambda: dashboard.events("CreditsDebited", run=run))
    assert (debit["data"]["amount"], debit["data"]["balance_after"]) == (3, 297)  # 1 + 2 for three platforms
    await t.send(t.event("PendingPostRejected", pending_post_id=debit["data"]["pending_post_id"]))

    assert await dashboard.outcome(run) == "REJECTED"
    [refund] = await dashboard.wait(lambda: dashboard.events("CreditsRefunded", run=run))
    assert (refund["data"]["amount"], refund["data"]["balance_after"], refund["data"]["reason"]) == (
        3,
        300,
        "PENDING_POST_REJECTED",
    )
    await dashboard.settle()
    assert dashboard.events("PostPublished", run=run) == []
    assert len(dashboard.events("CreditsRefunded", run=run)) == 1
    assert await t.credits() == 300


async def test_engagement_comes_back_with_its_rate(tenant: Callable[[], Tenant], dashboard: Dashboard) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON",), materials=(COFFEE,))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()
    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    [post] = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    post_id = post["data"]["post_id"]

    await t.send(
        t.event("EngagementReported", post_id=post_id, likes=30, comments=6, shares=4, impressions=800),
    )
    [update] = await dashboard.wait(
        lambda: [e for e in dashboard.events("EngagementUpdated", org=t.org) if e["data"]["post_id"] == post_id]
    )
    data = update["data"]
    assert (data["likes"], data["comments"], data["shares"], data["impressions"]) == (30, 6, 4, 800)
    assert data["engagement_rate"] == pytest.approx(40 / 800)
    assert (data["platform"], data["brand_profile_id"], data["angle"]) == (
        "MASTODON",
        t.brand,
        post["data"]["angle"],
    )
    assert dashboard.board.engagement[post_id] == pytest.approx(0.05)


async def test_a_deleted_brand_gets_no_more_runs(tenant: Callable[[], Tenant], dashboard: Dashboard) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON",), materials=(COFFEE, GRIND))
    doomed = await t.schedule(["MASTODON"])
    await t.landed()
    first = await t.trigger(doomed)
    assert await dashboard.outcome(first) == "PUBLISHED"

    # A second brand of the same organization keeps working: its run is the fence below.
    other = Tenant(t.upstream, dashboard, t.hopcast)
    other.org, other.accounts = t.org, t.accounts
    await t.send(
        other.event("BrandProfileCreated", brand_profile_id=other.brand, name="Second brand"),
        other.event(
            "BrandAccountLinked",
            brand_profile_id=other.brand,
            social_account_id=t.accounts["MASTODON"],
            is_default=True,
        ),
        other.material_event(KETTLE),
    )
    alive = await other.schedule(["MASTODON"])
    await t.send(t.event("BrandProfileDeleted", brand_profile_id=t.brand))
    await t.landed()

    # The deleted brand's trigger and, after it on the same partition, the live brand's.
    await t.send(t.event("ScheduleTriggerRequested", schedule_id=doomed))
    fence = await other.trigger(alive)
    assert await dashboard.outcome(fence) == "PUBLISHED"
    await dashboard.settle()
    assert dashboard.runs_of_schedule(doomed) == [first]
    assert [e["data"]["run_id"] for e in dashboard.events("ScheduleRunCompleted", org=t.org)] == [first, fence]
    # Nothing was published for the deleted brand after its first run.
    brands = [e["data"]["brand_profile_id"] for e in dashboard.events("PostPublished", org=t.org, topic=PUBLISHER)]
    assert brands == [t.brand, other.brand]


async def test_duplicate_material_is_skipped(tenant: Callable[[], Tenant], dashboard: Dashboard) -> None:
    t = tenant()
    # The same text twice (a teammate submitted it again), nothing else.
    await t.create(credits=300, accounts=("MASTODON",), materials=(COFFEE, COFFEE))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()

    first = await t.trigger(schedule)
    assert await dashboard.outcome(first) == "PUBLISHED"
    second = await t.trigger(schedule)
    assert await dashboard.outcome(second) == "SKIPPED_DUPLICATE"
    await dashboard.settle()

    [skip] = dashboard.events("ScheduleRunSkipped", run=second)
    assert (skip["data"]["reason"], skip["data"]["schedule_id"]) == ("ALL_CANDIDATES_DUPLICATE", schedule)
    assert len(dashboard.events("ScheduleRunCompleted", run=second)) == 1
    # Nothing drafted, charged or published for the skipped run.
    for type_name in ("PendingPostCreated", "CreditsDebited", "PostPublished"):
        assert dashboard.events(type_name, run=second) == []
    assert await t.credits() == 300 - 2


async def test_a_platform_without_an_account_fails_alone_and_is_refunded(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    partly, none = tenant(), tenant()
    await partly.create(credits=300, accounts=("MASTODON",), materials=(COFFEE,))
    await none.create(credits=300, accounts=(), materials=(COFFEE,))
    schedules = [await partly.schedule(["MASTODON", "LINKEDIN"]), await none.schedule(["LINKEDIN"])]
    await partly.landed()
    runs = [await partly.trigger(schedules[0]), await none.trigger(schedules[1])]
    assert [await dashboard.outcome(r) for r in runs] == ["PARTIALLY_PUBLISHED", "PUBLISH_FAILED"]
    await dashboard.settle()

    [failed] = dashboard.events("PostPublishFailed", run=runs[0])
    assert (failed["data"]["platform"], failed["data"]["reason"]) == ("LINKEDIN", "NO_ACCOUNT_FOR_PLATFORM")
    assert [p["data"]["platform"] for p in dashboard.events("PostPublished", run=runs[0], topic=PUBLISHER)] == [
        "MASTODON"
    ]
    # Debited 1 + 2, refunded LINKEDIN's share; the run with no account at all gets its PUBLISH part back.
    assert [e["data"]["amount"] for e in dashboard.events("CreditsDebited", run=runs[0])] == [3]
    assert [e["data"]["amount"] for e in dashboard.events("CreditsRefunded", run=runs[0])] == [1]
    assert [e["data"]["amount"] for e in dashboard.events("CreditsDebited", run=runs[1])] == [2]
    assert [e["data"]["amount"] for e in dashboard.events("CreditsRefunded", run=runs[1])] == [1]
    assert dashboard.events("PostPublished", run=runs[1]) == []
    assert (await partly.credits(), await none.credits()) == (298, 299)


async def test_every_run_ends_in_exactly_one_completion_and_one_trace(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    """A burst of runs with every kind of ending, all at once: each ends exactly once, and every
    event of a run carries a traceparent of the run's one trace."""
    rich, broke = tenant(), tenant()
    await rich.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(COFFEE, GRIND, KETTLE))
    await broke.create(credits=None, accounts=("MASTODON",), materials=(COFFEE,))
    schedules = [
        await rich.schedule(["MASTODON", "BLUESKY"]),
        await rich.schedule(["MASTODON", "TIKTOK"]),
        await rich.schedule(["BLUESKY"]),
        await broke.schedule(["MASTODON"]),
    ]
    await rich.landed()
    owners = [rich, rich, rich, broke]
    before = {s: set(dashboard.runs_of_schedule(s)) for s in schedules}
    for owner, schedule in zip(owners, schedules, strict=True):
        await owner.send(owner.event("ScheduleTriggerRequested", schedule_id=schedule))
    # Three runs over three materials used once each, and one run with nothing to spend.
    runs = await dashboard.wait(
        lambda: (
            [r for s in schedules for r in dashboard.runs_of_schedule(s) if r not in before[s]]
            if all(set(dashboard.runs_of_schedule(s)) - before[s] for s in schedules)
            else []
        )
    )
    assert len(runs) == 4
    outcomes = [await dashboard.outcome(r) for r in runs]
    assert Counter(outcomes) == Counter(["PUBLISHED", "PARTIALLY_PUBLISHED", "PUBLISHED", "INSUFFICIENT_CREDITS"])
    await dashboard.settle(1.5)

    for run in runs:
        assert len(dashboard.events("ScheduleRunCompleted", run=run)) == 1, run
        messages = dashboard.messages_of(run=run)
        assert len(messages) >= 3
        traces = {trace_id(m.headers) for m in messages}
        assert len(traces) == 1 and None not in traces, (run, [(m.value["type"], m.headers) for m in messages])
    assert len({next(iter({trace_id(m.headers) for m in dashboard.messages_of(run=r)})) for r in runs}) == 4
    # And over everything this session has seen: no run ever ended twice.
    completions = Counter(e["data"]["run_id"] for e in dashboard.events("ScheduleRunCompleted", topic=ANALYTICS))
    assert completions and max(completions.values()) == 1
    # Nothing of these organizations was dead-lettered (other tests send bad input on purpose).
    ours = {rich.org, broke.org}
    assert [d for d in dashboard.dead_letters() if (d.get("original_json") or {}).get("organizationid") in ours] == []
