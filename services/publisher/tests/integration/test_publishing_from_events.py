"""Publishing from events, on the real database: a pending post's inputs (the post, its debit,
its approval or rejection) in any order and in batches publish once per platform on the
account chosen for it, or end the run once as rejected; nothing goes out for a deleted
organization. Given these events, expect those rows and those events in the outbox (the relay
is not running here; the Kafka path is in test_publisher_kafka.py; the harness in conftest.py).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration


POSTS_PUBLISHED = "hopcast_publisher_posts_published_total"


async def test_inputs_in_every_order_publish_once_per_platform(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("MASTODON", default=True)
    await tenant.account("BLUESKY", default=True)
    runs = []
    for order in itertools.permutations(["post", "debit"]):
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"])
        await harness.deliver(post, *order)
        runs.append(post)
    for order in itertools.permutations(["post", "debit", "approve"]):
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"], requires_approval=True)
        await harness.deliver(post, *order)
        runs.append(post)
    waiting = tenant.post_events(platforms=["MASTODON"], requires_approval=True)
    await harness.deliver(waiting, "debit", "post")  # no approval: must not go out

    before = {p: REGISTRY.get_sample_value(POSTS_PUBLISHED, {"platform": p}) or 0 for p in ("MASTODON", "BLUESKY")}
    assert await harness.publish() == len(runs)
    for platform, count in before.items():
        assert REGISTRY.get_sample_value(POSTS_PUBLISHED, {"platform": platform}) == count + len(runs)
    published = await harness.events("PostPublished", "t.publisher.events")
    analytics = await harness.events("PostPublished", "t.analytics.events")
    completed = await harness.events("ScheduleRunCompleted", "t.analytics.events")
    for post in runs:
        mine = harness.of_run(published, post["run_id"])
        assert sorted(e["data"]["platform"] for e in mine) == ["BLUESKY", "MASTODON"]
        assert len(harness.of_run(analytics, post["run_id"])) == 2
        outcome = harness.of_run(completed, post["run_id"])
        assert [e["data"]["outcome"] for e in outcome] == ["PUBLISHED"]
        assert outcome[0]["correlationid"] == post["run_id"]
        assert outcome[0]["data"]["due_at"] == post["post"].data["due_at"]
    assert harness.of_run(published, waiting["run_id"]) == [] and harness.of_run(completed, waiting["run_id"]) == []
    row = await PendingPostRepository().pending_post(harness.db.pool, uuid.UUID(waiting["pending_post_id"]))  # type: ignore[arg-type]
    assert row["status"] == "WAITING"
    assert await harness.db.pool.fetchval("SELECT count(*) FROM posts") == 2 * len(runs)
    assert await harness.publish() == 0  # nothing left, nothing published twice


async def test_a_second_debit_and_a_redelivery_change_nothing(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "debit", "post")
    await harness.publish()
    assert await harness.send(post["debit"], "billing.events") == "duplicate"
    second = tenant.event("CreditsDebited", pending_post_id=post["pending_post_id"], run_id=post["run_id"])
    assert await harness.send(second, "billing.events") == "handled"
    assert await harness.publish() == 0
    assert len(await harness.events("PostPublished", "t.publisher.events")) == 1
    assert len(await harness.events("ScheduleRunCompleted")) == 1


@pytest.mark.parametrize(
    "order",
    [("post", "debit", "reject"), ("reject", "post", "debit"), ("debit", "reject", "post")],
)
async def test_a_rejection_ends_the_run_as_rejected_once(harness: Any, order: tuple[str, ...]) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await harness.deliver(post, *order)
    await harness.deliver(post, "approve")  # too late: changes nothing
    assert await harness.publish() == 0
    completed = await harness.events("ScheduleRunCompleted")
    assert [e["data"]["outcome"] for e in completed] == ["REJECTED"]
    assert await harness.events("PostPublished") == []


async def test_a_rejected_debit_ends_it_without_any_event_from_the_publisher(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await harness.deliver(post, "reject", "debit_rejected", "post", "approve")
    assert await harness.publish() == 0
    # billing emitted INSUFFICIENT_CREDITS; a second end of the run would be a lie
    assert await harness.db.pool.fetchval("SELECT count(*) FROM outbox") == 0
    row = await harness.db.pool.fetchrow(
        "SELECT status FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert row["status"] == "DEBIT_REJECTED"


async def test_a_consumer_batch_of_inputs_in_any_order_decides_as_one_at_a_time(
    harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    await tenant.account("MASTODON", default=True)
    scenarios: list[tuple[str, bool, tuple[str, ...]]] = [
        *(("PUBLISHED", False, order) for order in itertools.permutations(["post", "debit"])),
        *(("PUBLISHED", True, order) for order in itertools.permutations(["post", "debit", "approve"])),
        ("PUBLISHED", False, ("debit", "post", "debit")),  # a redelivery in the same batch
        ("REJECTED", True, ("post", "debit", "reject", "approve")),
        ("REJECTED", True, ("reject", "post", "debit")),
        ("DEBIT_REJECTED", True, ("reject", "debit_rejected", "post", "approve")),
        ("WAITING", True, ("debit", "post")),
    ]

    def records() -> tuple[list[Any], list[dict[str, Any]]]:
        posts = [tenant.post_events(platforms=["BLUESKY", "MASTODON"], requires_approval=a) for _, a, _ in scenarios]
        lanes = [[harness.input_record(p, n) for n in order] for p, (_, _, order) in zip(posts, scenarios, strict=True)]
        # Interleaved: each pending post's inputs in their order, mixed with the others'.
        mixed = [lane[i] for i in range(4) for lane in lanes if i < len(lane)]
        return mixed, posts

    async def outcome_of(posts: list[dict[str, Any]]) -> list[tuple[str, list[str], int]]:
        await harness.publish()
        completed = await harness.events("ScheduleRunCompleted")
        published = await harness.events("PostPublished", "t.publisher.events")
        seen = []
        for post in posts:
            row = await PendingPostRepository().pending_post(harness.db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
            outcomes = [e["data"]["outcome"] for e in harness.of_run(completed, post["run_id"])]
            seen.append((row["status"], outcomes, len(harness.of_run(published, post["run_id"]))))
        return seen

    one_by_one, posts = records()
    for record in one_by_one:
        assert await harness.consumer.handle_record(record) in ("handled", "duplicate")
    expected = await outcome_of(posts)
    assert [s for s, _, _ in expected] == [s for s, _, _ in scenarios]
    assert [o for _, o, _ in expected] == [[s] if s in ("PUBLISHED", "REJECTED") else [] for s, _, _ in scenarios]
    assert [n for _, _, n in expected] == [2 if s == "PUBLISHED" else 0 for s, _, _ in scenarios]

    together, posts = records()
    with caplog.at_level("INFO"):
        outcomes = await harness.consumer.handle_batch(together)
    assert "one by one" not in caplog.text  # the batched handler took them all at once
    assert outcomes.count("duplicate") == 1 and outcomes.count("handled") == len(together) - 1
    assert await outcome_of(posts) == expected


async def test_an_input_of_another_tenant_in_a_batch_is_dead_lettered_and_the_rest_handled(harness: Any) -> None:
    tenant, other = await harness.tenant(), await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    mine, next_one = tenant.post_events(platforms=["BLUESKY"]), tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(mine, "post")  # the pending post is the tenant's
    theirs = other.event("CreditsDebited", pending_post_id=mine["pending_post_id"], run_id=mine["run_id"])
    batch = [
        as_record(mine["debit"], topic="billing.events"),
        as_record(next_one["post"], topic="content.events"),
        as_record(theirs, topic="billing.events"),
        as_record(next_one["debit"], topic="billing.events"),
    ]
    assert await harness.consumer.handle_batch(batch) == ["handled", "handled", "dead_lettered", "handled"]
    assert "another organization" in (await harness.dead_letters())[0]["error"]
    assert await harness.publish() == 2
    published = await harness.events("PostPublished", "t.publisher.events")
    assert sorted(e["data"]["run_id"] for e in published) == sorted([mine["run_id"], next_one["run_id"]])


async def test_default_account_then_fallback_then_no_account(harness: Any) -> None:
    tenant = await harness.tenant()
    default = await tenant.account("MASTODON", default=True)
    other = await tenant.account("MASTODON")
    await tenant.account("BLUESKY", default=True)
    inactive = await tenant.account("LINKEDIN", active=False, external_account_id="urn:li:person:x")

    async def run() -> dict[str, Any]:
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY", "LINKEDIN"])
        await harness.deliver(post, "post", "debit")
        await harness.publish()
        return post

    first = await run()
    published = harness.of_run(await harness.events("PostPublished", "t.publisher.events"), first["run_id"])
    by_platform = {e["data"]["platform"]: e["data"] for e in published}
    assert by_platform["MASTODON"]["social_account_id"] == default
    failed = harness.of_run(await harness.events("PostPublishFailed"), first["run_id"])
    assert [(e["data"]["platform"], e["data"]["reason"]) for e in failed] == [("LINKEDIN", "NO_ACCOUNT_FOR_PLATFORM")]
    completed = harness.of_run(await harness.events("ScheduleRunCompleted"), first["run_id"])
    assert [e["data"]["outcome"] for e in completed] == ["PARTIALLY_PUBLISHED"]

    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=default))
    second = await run()
    published = harness.of_run(await harness.events("PostPublished", "t.publisher.events"), second["run_id"])
    assert {e["data"]["platform"]: e["data"]["social_account_id"] for e in published}["MASTODON"] == other

    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=other))
    await harness.send(tenant.event("SocialAccountRestored", social_account_id=default))
    third = await run()
    published = harness.of_run(await harness.events("PostPublished", "t.publisher.events"), third["run_id"])
    assert {e["data"]["platform"]: e["data"]["social_account_id"] for e in published}["MASTODON"] == default
    assert inactive not in {e["data"]["social_account_id"] for e in published}


async def test_a_new_default_replaces_the_old_one(harness: Any) -> None:
    tenant = await harness.tenant()
    first = await tenant.account("BLUESKY", default=True)
    second = await tenant.account("BLUESKY", default=True)
    rows = await harness.db.pool.fetch(
        "SELECT social_account_id, is_default FROM brand_accounts WHERE brand_profile_id = $1", uuid.UUID(tenant.brand)
    )
    assert {str(r["social_account_id"]): r["is_default"] for r in rows} == {first: False, second: True}


async def test_nothing_is_published_for_a_deleted_organization(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    await harness.send(tenant.event("OrganizationDeleted"))
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 0
    assert await harness.events("PostPublished") == []
    failed = await harness.events("PostPublishFailed")
    assert [e["data"]["reason"] for e in failed] == ["NO_ACCOUNT_FOR_PLATFORM"]  # so billing refunds
    assert [e["data"]["outcome"] for e in await harness.events("ScheduleRunCompleted")] == ["ORGANIZATION_INACTIVE"]


async def test_deleted_while_publishing_no_platform_is_called_and_restored_it_publishes_again(
    harness: Any,
) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    sandbox = harness.adapters["BLUESKY"]
    assert isinstance(sandbox, SandboxAdapter)
    first = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(first, "post", "debit")  # inputs complete: PUBLISHING, not yet leased
    await harness.send(tenant.event("OrganizationDeleted"))
    assert await harness.publish() == 1
    assert sandbox.calls == 0
    assert await harness.events("PostPublished") == []
    (failed,) = await harness.events("PostPublishFailed")
    assert failed["data"]["reason"] == "NO_ACCOUNT_FOR_PLATFORM" and "deleted" in failed["data"]["detail"]
    (completed,) = await harness.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "ORGANIZATION_INACTIVE"

    await harness.send(tenant.event("OrganizationRestored"))
    second = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(second, "post", "debit")
    assert await harness.publish() == 1
    assert sandbox.calls == 1
    (published,) = await harness.events("PostPublished", "t.publisher.events")
    assert published["data"]["run_id"] == second["run_id"]
