"""A pending post's inputs (draft, debit, approval, rejection), in any order and in batches,
handled in memory: the repositories are fakes that subclass the real ones, and the state
they keep is what the real ones write. Given these events, expect the pending post's status,
its publishing attempts and the events emitted. (On PostgreSQL, with the publishing loop:
tests/integration/test_publishing_from_events.py.)"""

from __future__ import annotations

import base64
import itertools
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from hopcast_publisher.adapters.accounts import AccountRepository, PublishingContext
from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.pending_posts import PENDING_POST_STATE, PendingPostRepository, publishing_post
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.domain.accounts import LinkedAccount
from hopcast_publisher.domain.publishing import PublishingPost
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.handlers import DISPATCH, pending_post_inputs
from hopcast_shared.contract.envelope import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.contract.registry import model_for
from hopcast_shared.crypto import load_keyring
from hopcast_shared.db import Conn
from hopcast_shared.dispatch import Batched
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.settings import CryptoSettings, KafkaSettings

ORG = uuid.uuid4()
BRAND = uuid.uuid4()
MASTODON_ACCOUNT = uuid.uuid4()


class FakePendingPosts(PendingPostRepository):
    """Pending posts as rows in dicts (the columns the real table has), attempts in a list."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.attempts: list[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]] = []

    async def lock_pending_posts(
        self, conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        for pending_post_id, org_id in keys:
            self.rows.setdefault(pending_post_id, new_row(pending_post_id, org_id))
        return {pending_post_id: dict(self.rows[pending_post_id]) for pending_post_id, _ in keys}

    async def save_pending_posts(
        self, conn: Conn, states: Sequence[Mapping[str, Any]]
    ) -> dict[uuid.UUID, PublishingPost]:
        for state in states:
            self.rows[state["id"]].update({name: state[name] for name, _ in PENDING_POST_STATE})
        return {s["id"]: publishing_post(self.rows[s["id"]]) for s in states}  # type: ignore[arg-type]

    async def runs_past_deadline(
        self, conn: Conn, runs: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return set()

    async def insert_attempts(
        self, conn: Conn, rows: Sequence[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]]
    ) -> None:
        known = {(a[0], a[1]) for a in self.attempts}
        self.attempts += [r for r in rows if (r[0], r[1]) not in known]


class FakeAccounts(AccountRepository):
    """One brand with one active, default MASTODON account."""

    async def publishing_contexts(
        self, conn: Conn, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], PublishingContext]:
        linked = LinkedAccount(MASTODON_ACCOUNT, "MASTODON", True, True, False, datetime(2027, 1, 1, tzinfo=UTC))
        return {key: (True, True, [linked] if key == (ORG, BRAND) else []) for key in keys}


def new_row(pending_post_id: uuid.UUID, org_id: uuid.UUID) -> dict[str, Any]:
    """A pending post as `INSERT ... RETURNING *` creates it: WAITING, nothing known yet."""
    row: dict[str, Any] = {name: None for name, _ in PENDING_POST_STATE}
    row.update(
        id=pending_post_id,
        organization_id=org_id,
        has_post=False,
        status="WAITING",
        trace_headers=[],
        claims=0,
        completion_failures=0,
    )
    return row


def deps(pending_posts: FakePendingPosts) -> PublisherDeps:
    keyring = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))
    return PublisherDeps(
        tokens=AccountTokens(keyring),
        settings=PublisherSettings(),
        accounts=FakeAccounts(),
        pending_posts=pending_posts,
    )


def inputs(*, requires_approval: bool = False) -> dict[str, Envelope]:
    pending, run = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "post": example_event(
            "PendingPostCreated",
            organization_id=ORG,
            pending_post_id=pending,
            run_id=run,
            brand_profile_id=str(BRAND),
            platforms=["MASTODON", "LINKEDIN"],
            requires_approval=requires_approval,
        ),
        "debit": example_event("CreditsDebited", organization_id=ORG, pending_post_id=pending, run_id=run),
        "approve": example_event("PendingPostApproved", organization_id=ORG, pending_post_id=pending),
        "reject": example_event("PendingPostRejected", organization_id=ORG, pending_post_id=pending),
    }


def item(envelope: Envelope) -> tuple[EventContext, Any]:
    ctx = EventContext(cast(Conn, None), envelope, "publisher", KafkaSettings())
    return ctx, envelope.data_as(model_for(envelope.type))


async def handle(pending_posts: FakePendingPosts, *envelopes: Envelope, batch: bool) -> list[EventContext]:
    """Each input alone (as consecutive single-event batches) or all as one consumer batch."""
    items = [item(e) for e in envelopes]
    if batch:
        await pending_post_inputs(deps(pending_posts), items)
    else:
        for one in items:
            await pending_post_inputs(deps(pending_posts), [one])
    return [ctx for ctx, _ in items]


@pytest.mark.parametrize("batch", [False, True], ids=["one at a time", "one batch"])
async def test_a_drafted_and_paid_post_starts_publishing_in_any_order(batch: bool) -> None:
    for order in itertools.permutations(["post", "debit"]):
        pending_posts = FakePendingPosts()
        events = inputs()
        contexts = await handle(pending_posts, *(events[name] for name in order), batch=batch)

        pending_post_id = uuid.UUID(events["post"].data["pending_post_id"])
        row = pending_posts.rows[pending_post_id]
        assert (row["status"], row["debit"], row["cause_event_id"]) == ("PUBLISHING", "DEBITED", events[order[-1]].id)
        assert sorted((a[1], a[3], a[4], a[5]) for a in pending_posts.attempts) == [
            ("LINKEDIN", None, "FAILED", "NO_ACCOUNT_FOR_PLATFORM"),
            ("MASTODON", MASTODON_ACCOUNT, "QUEUED", None),  # nothing sent yet: no lookup when resumed
        ]
        mastodon = next(a for a in pending_posts.attempts if a[1] == "MASTODON")
        assert mastodon[2] == f"hopcast-{pending_post_id}-mastodon"
        assert all(ctx.outbox == [] for ctx in contexts)  # the loop completes it, not the handler


async def test_in_manual_mode_nothing_starts_before_the_approval() -> None:
    pending_posts = FakePendingPosts()
    events = inputs(requires_approval=True)
    await handle(pending_posts, events["post"], events["debit"], batch=True)
    pending_post_id = uuid.UUID(events["post"].data["pending_post_id"])
    assert pending_posts.rows[pending_post_id]["status"] == "WAITING" and pending_posts.attempts == []

    await handle(pending_posts, events["approve"], batch=False)
    assert pending_posts.rows[pending_post_id]["status"] == "PUBLISHING"
    assert len(pending_posts.attempts) == 2


async def test_a_rejected_paid_post_ends_its_run_rejected_once() -> None:
    pending_posts = FakePendingPosts()
    events = inputs(requires_approval=True)
    contexts = await handle(pending_posts, events["reject"], events["post"], events["debit"], batch=True)
    late = await handle(pending_posts, events["approve"], events["reject"], batch=False)

    pending_post_id = uuid.UUID(events["post"].data["pending_post_id"])
    assert pending_posts.rows[pending_post_id]["status"] == "REJECTED"
    assert pending_posts.attempts == []
    rows = [row for ctx in contexts + late for row in ctx.outbox]
    assert [(r.topic, r.event_type) for r in rows] == [("analytics.events", "ScheduleRunCompleted")]
    completed = json.loads(rows[0].payload)
    assert completed["data"]["outcome"] == "REJECTED"
    assert completed["correlationid"] == events["post"].data["run_id"]


async def test_an_input_naming_another_organizations_pending_post_is_refused() -> None:
    pending_posts = FakePendingPosts()
    events = inputs()
    await handle(pending_posts, events["post"], batch=False)
    theirs = example_event(
        "CreditsDebited",
        organization_id=uuid.uuid4(),
        pending_post_id=events["post"].data["pending_post_id"],
        run_id=events["post"].data["run_id"],
    )
    with pytest.raises(PermanentError, match="another organization"):
        await handle(pending_posts, theirs, batch=False)


def test_every_input_of_a_pending_post_goes_to_the_one_batched_handler() -> None:
    handlers = {DISPATCH[t] for t in ("PendingPostCreated", "CreditsDebited", "CreditsDebitRejected")}
    handlers |= {DISPATCH[t] for t in ("PendingPostApproved", "PendingPostRejected")}
    (handler,) = handlers
    assert isinstance(handler, Batched) and handler.many is pending_post_inputs
