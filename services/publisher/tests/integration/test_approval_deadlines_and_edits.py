"""Manual mode on the real database: a draft past its approval deadline with nobody's decision
ends EXPIRED once, whichever replicas watch (PendingPostExpired and ScheduleRunCompleted
EXPIRED in the same transaction); a decision after that changes nothing and is counted; an
approval with texts waits for content's check, and content's PendingPostEditAccepted
publishes the edited texts."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.service_layer.expiry import expire_overdue_drafts
from hopcast_shared.settings import KafkaSettings

pytestmark = pytest.mark.integration

KAFKA = KafkaSettings(topic_prefix="t.")
PAST = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
LATER = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")


def late_decisions(kind: str) -> float:
    return REGISTRY.get_sample_value("hopcast_publisher_late_decisions_total", {"decision": kind}) or 0.0


async def manual_post(h: Any, platforms: list[str], deadline: str) -> tuple[Any, dict[str, Any]]:
    tenant = await h.tenant()
    for platform in platforms:
        await tenant.account(platform, default=True)
    post = tenant.post_events(platforms=platforms, requires_approval=True)
    post["post"].data["approval_deadline"] = deadline
    return tenant, post


async def row(h: Any, pending_post_id: str) -> dict[str, Any]:
    found = await h.db.pool.fetchrow("SELECT * FROM pending_posts WHERE id = $1", uuid.UUID(pending_post_id))
    assert found is not None
    return dict(found)


async def ours(h: Any, event_type: str, run_id: str) -> list[dict[str, Any]]:
    return h.of_run(await h.events(event_type), run_id)


async def test_a_draft_past_its_deadline_expires_once_across_replicas_and_a_late_approval_is_counted(
    harness: Any,
) -> None:
    _, post = await manual_post(harness, ["MASTODON", "BLUESKY"], PAST)
    await harness.deliver(post, "post", "debit")

    # Two replicas' watchers at once: one claims it, the other finds nothing to claim.
    claimed = await asyncio.gather(*(expire_overdue_drafts(harness.db, KAFKA) for _ in range(4)))
    assert sum(claimed) == 1
    assert await expire_overdue_drafts(harness.db, KAFKA) == 0

    run = post["run_id"]
    [expired] = await ours(harness, "PendingPostExpired", run)
    assert expired["topic"] == "t.publisher.events"
    assert expired["data"]["pending_post_id"] == post["pending_post_id"]
    assert datetime.fromisoformat(expired["data"]["approval_deadline"]) == datetime.fromisoformat(PAST)
    [completed] = await ours(harness, "ScheduleRunCompleted", run)
    assert (completed["topic"], completed["data"]["outcome"]) == ("t.analytics.events", "EXPIRED")
    assert (await row(harness, post["pending_post_id"]))["status"] == "EXPIRED"

    before = late_decisions("approved")
    assert await harness.send(post["approve"]) == "handled"
    assert await harness.publish() == 0
    assert late_decisions("approved") == before + 1
    state = await row(harness, post["pending_post_id"])
    assert (state["status"], state["approval"]) == ("EXPIRED", None)
    assert await ours(harness, "PostPublished", run) == []
    assert len(await ours(harness, "ScheduleRunCompleted", run)) == 1
    assert await harness.dead_letters() == []


async def test_a_draft_expires_only_once_its_debit_is_known_and_never_before_its_deadline(harness: Any) -> None:
    _, unpaid = await manual_post(harness, ["MASTODON"], PAST)
    _, future = await manual_post(harness, ["MASTODON"], LATER)
    await harness.deliver(unpaid, "post")
    await harness.deliver(future, "post", "debit")
    assert await expire_overdue_drafts(harness.db, KAFKA) == 0  # waits for the debit; not yet due

    await harness.deliver(unpaid, "debit")
    assert await expire_overdue_drafts(harness.db, KAFKA) == 1
    assert [e["data"]["outcome"] for e in await ours(harness, "ScheduleRunCompleted", unpaid["run_id"])] == ["EXPIRED"]
    assert (await row(harness, future["pending_post_id"]))["status"] == "WAITING"


async def test_a_rejected_debit_or_a_decision_in_time_is_never_expired(harness: Any) -> None:
    _, refused = await manual_post(harness, ["MASTODON"], PAST)
    _, approved = await manual_post(harness, ["MASTODON"], PAST)
    await harness.deliver(refused, "post", "debit_rejected")
    await harness.deliver(approved, "post", "debit", "approve")
    assert await expire_overdue_drafts(harness.db, KAFKA) == 0
    assert await harness.publish() == 1
    assert await harness.events("PendingPostExpired") == []


async def test_an_edited_approval_waits_for_contents_check_then_publishes_the_edited_text(harness: Any) -> None:
    tenant, post = await manual_post(harness, ["MASTODON", "BLUESKY"], LATER)
    drafted = {"MASTODON": "Drafted for Mastodon. #coffee", "BLUESKY": "Drafted for Bluesky. #coffee"}
    post["post"].data["texts"] = drafted
    await harness.deliver(post, "post", "debit")

    edited = "Roasted Tuesday, in your cup by Friday. #coffee"
    approval = tenant.event("PendingPostApproved", pending_post_id=post["pending_post_id"], texts={"BLUESKY": edited})
    assert await harness.send(approval) == "handled"
    assert (await row(harness, post["pending_post_id"]))["approval"] is None  # not approved before the check
    assert await harness.publish() == 0

    accepted = tenant.event(
        "PendingPostEditAccepted",
        pending_post_id=post["pending_post_id"],
        run_id=post["run_id"],
        approval_id=str(approval.id),
        texts={"BLUESKY": edited},
    )
    assert await harness.send(accepted, "content.events") == "handled"
    assert await harness.publish() == 1

    def sent(platform: str) -> list[str]:
        adapter = harness.adapters[platform]
        assert isinstance(adapter, SandboxAdapter)
        return [p.text for p in adapter.posts.values()]

    assert (sent("BLUESKY"), sent("MASTODON")) == ([edited], [drafted["MASTODON"]])
    state = await row(harness, post["pending_post_id"])
    texts = state["texts"] if isinstance(state["texts"], dict) else json.loads(state["texts"])
    assert texts == {**drafted, "BLUESKY": edited}
    [completed] = await ours(harness, "ScheduleRunCompleted", post["run_id"])
    assert completed["data"]["outcome"] == "PUBLISHED"


async def test_an_edit_accepted_after_the_draft_expired_is_counted_and_changes_nothing(harness: Any) -> None:
    tenant, post = await manual_post(harness, ["BLUESKY"], PAST)
    await harness.deliver(post, "post", "debit")
    assert await expire_overdue_drafts(harness.db, KAFKA) == 1

    before = late_decisions("edited")
    edit = tenant.event("PendingPostApproved", pending_post_id=post["pending_post_id"], texts={"BLUESKY": "Late."})
    assert await harness.send(edit) == "handled"
    assert late_decisions("edited") == before  # counted once, when content's verdict comes
    accepted = tenant.event("PendingPostEditAccepted", pending_post_id=post["pending_post_id"], run_id=post["run_id"])
    assert await harness.send(accepted, "content.events") == "handled"
    assert late_decisions("edited") == before + 1
    assert await harness.publish() == 0
    assert (await row(harness, post["pending_post_id"]))["status"] == "EXPIRED"
