"""The live view's board (a projection of the outbound topics) and the demo's plan, without any
server: messages are the contract's examples, as the topics would carry them."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from rich.console import Console

from hopcast_shared.contract import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import Keyring, account_transit_aad, is_ciphertext
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.demo import Demo, build_plan
from hopcast_stack.upstream import Upstream
from hopcast_stack.view import Board, Message, render, trace_id

ORG = str(uuid.uuid4())
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(topic: str, event: Envelope, *, trace: str = TRACE) -> Message:
    return Message(topic, json.loads(event.to_json()), {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})


def run_events(run_id: str, pending_id: str, *, requires_approval: bool = False) -> dict[str, Envelope]:
    common: dict[str, Any] = {"organization_id": ORG, "correlation_id": run_id}
    ids = {"run_id": run_id, "pending_post_id": pending_id}
    return {
        "draft": example_event("PendingPostCreated", requires_approval=requires_approval, **ids, **common),
        "debit": example_event("CreditsDebited", amount=3, balance_after=997, **ids, **common),
        "usage": example_event("CreditsUsage", balance_after=997, **common),
        "published": example_event("PostPublished", platform="MASTODON", **ids, **common),
        "failed": example_event(
            "PostPublishFailed", platform="BLUESKY", reason="NO_ACCOUNT_FOR_PLATFORM", **ids, **common
        ),
        "refund": example_event("CreditsRefunded", amount=1, balance_after=998, **ids, **common),
        "refund_usage": example_event("CreditsUsage", action="REFUND", amount=1, balance_after=998, **common),
        "completed": example_event("ScheduleRunCompleted", run_id=run_id, outcome="PARTIALLY_PUBLISHED", **common),
    }


def test_a_run_moves_through_its_stages_to_its_outcome() -> None:
    clock = Clock()
    board = Board(now=clock)
    run_id, pending = str(uuid.uuid4()), str(uuid.uuid4())
    events = run_events(run_id, pending)
    board.names[ORG] = "Northwind Roasters"

    board.apply(message("content.events", events["draft"]))
    run = board.runs[run_id]
    assert (run.stage, run.platforms, run.pending_post_id) == ("drafted", ["MASTODON", "BLUESKY"], pending)
    board.apply(message("billing.events", events["debit"]))
    board.apply(message("analytics.events", events["usage"]))
    assert (run.stage, run.debited, board.organizations[ORG].credits) == ("publishing", 3, 997)
    board.apply(message("publisher.events", events["published"]))
    board.apply(message("analytics.events", events["published"]))  # the same event on two topics
    board.apply(message("publisher.events", events["failed"]))
    board.apply(message("billing.events", events["refund"]))
    board.apply(message("analytics.events", events["refund_usage"]))
    assert not run.done and board.in_flight() == [run]
    clock.now = 102.5
    board.apply(message("analytics.events", events["completed"]))

    assert (run.outcome, run.stage, run.completions, run.seconds) == (
        "PARTIALLY_PUBLISHED",
        "PARTIALLY_PUBLISHED",
        1,
        2.5,
    )
    assert run.platform_results == {"MASTODON": "published", "BLUESKY": "NO_ACCOUNT_FOR_PLATFORM"}
    assert (run.refunded, run.trace_ids) == (1, {TRACE})
    assert (board.published, board.failed) == (Counter({"MASTODON": 1}), Counter({"BLUESKY": 1}))
    org = board.organizations[ORG]
    assert (org.credits, org.runs, dict(org.outcomes)) == (998, 1, {"PARTIALLY_PUBLISHED": 1})
    assert board.first_outcome_after == 2.5
    [line] = board.take_log()
    assert line.startswith(f"run {run_id[:8]} Northwind Roasters") and "PARTIALLY_PUBLISHED in 2.5s" in line
    assert board.take_log() == []

    # A late event (topics are not ordered with each other) never reopens the run; a second
    # completion is counted, so a dashboard can tell.
    board.apply(message("publisher.events", example_event("PostPublished", run_id=run_id, organization_id=ORG)))
    assert run.stage == "PARTIALLY_PUBLISHED"
    board.apply(message("analytics.events", example_event("ScheduleRunCompleted", run_id=run_id, organization_id=ORG)))
    assert (run.outcome, run.completions) == ("PARTIALLY_PUBLISHED", 2)


def test_manual_drafts_wait_for_approval_and_skips_and_rejections_show() -> None:
    board = Board()
    manual, skipped, broke = (str(uuid.uuid4()) for _ in range(3))
    events = run_events(manual, str(uuid.uuid4()), requires_approval=True)
    board.apply(message("content.events", events["draft"]))
    assert not board.runs[manual].awaiting_approval  # not before the debit
    board.apply(message("billing.events", events["debit"]))
    assert board.runs[manual].awaiting_approval and board.runs[manual].stage == "awaiting approval"

    board.apply(message("content.events", example_event("ScheduleRunSkipped", run_id=skipped, organization_id=ORG)))
    assert board.runs[skipped].stage == "skipped: ALL_CANDIDATES_DUPLICATE"
    board.apply(message("billing.events", example_event("CreditsDebitRejected", run_id=broke, organization_id=ORG)))
    assert board.runs[broke].stage == "debit rejected: INSUFFICIENT_CREDITS"


def test_dead_letters_and_engagement_and_trace_ids() -> None:
    board = Board()
    letter = {
        "type": "hopcast.DeadLetter",
        "dead_letter_id": str(uuid.uuid4()),
        "consumer": "publisher",
        "event_id": str(uuid.uuid4()),
        "event_type": "SocialAccountConnected",
        "error_kind": "data",
        "error": "access_token is not a token ciphertext",
    }
    board.apply(Message("publisher.dlq", letter, {}))
    board.apply(Message("publisher.dlq", letter, {}))  # read twice, counted once
    assert [(d.consumer, d.event_type, d.error_kind) for d in board.dead_letters] == [
        ("publisher", "SocialAccountConnected", "data")
    ]
    assert "dead letter in publisher" in board.take_log()[0]
    board.apply(message("analytics.events", example_event("EngagementUpdated", organization_id=ORG)))
    assert list(board.engagement.values()) == [0.0354]
    assert trace_id({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) == TRACE
    assert trace_id({"traceparent": "garbage"}) is None and trace_id({}) is None


def test_render_draws_runs_organizations_platforms_and_dead_letters() -> None:
    board = Board()
    board.names[ORG] = "Lumen Yoga Studio"
    run_id = str(uuid.uuid4())
    for key, event in run_events(run_id, str(uuid.uuid4())).items():
        board.apply(message("analytics.events" if "usage" in key or key == "completed" else "x.events", event))
    console = Console(width=160, record=True)
    console.print(render(board, parts=[("kafka", True), ("content", False)], footer="Ctrl-C stops everything"))
    text = console.export_text()
    for expected in (
        run_id[:8],
        "Lumen Yoga Studio",
        "PARTIALLY_PUBLISHED",
        "MASTODON ✓",
        "BLUESKY ✗",
        "-3 +1",
        "998",
        "Dead letters (0)",
        "Ctrl-C stops everything",
        "1 ended, 0 in flight",
    ):
        assert expected in text, expected


def test_the_demo_plan_is_two_organizations_of_valid_upstream_events_with_encrypted_tokens() -> None:
    keyring = Keyring.generate()
    upstream = Upstream(KafkaSettings(), keyring=keyring)
    plan = build_plan(upstream)
    assert [plan.names[o] for o in plan.organizations] == ["Northwind Roasters", "Lumen Yoga Studio"]
    types = Counter(e.type for e in plan.events)
    assert types["OrganizationCreated"] == 2 and types["SubscriptionActivated"] == 1 and types["CreditsGranted"] == 1
    assert types["BrandProfileCreated"] == 3 and types["SocialAccountConnected"] == 7
    assert types["MaterialSubmitted"] >= 10 and types["ScheduleCreated"] == len(plan.schedules) == 5
    assert {s.manual for s in plan.schedules} == {True, False}
    for event in plan.events:
        assert str(event.organizationid) in plan.organizations
        if event.type == "SocialAccountConnected":
            token = event.data["access_token"]
            bound = account_transit_aad(event.organizationid, event.data["social_account_id"])
            assert is_ciphertext(token) and keyring.decrypt(token, associated_data=bound).startswith("demo-")
    # Each organization's events come in an order its consumers can follow: the organization
    # first, a brand before what refers to it.
    for org in plan.organizations:
        ours = [e for e in plan.events if str(e.organizationid) == org]
        assert ours[0].type == "OrganizationCreated"
        brands_seen: set[str] = set()
        for event in ours:
            if event.type == "BrandProfileCreated":
                brands_seen.add(event.data["brand_profile_id"])
            elif "brand_profile_id" in event.data:
                assert event.data["brand_profile_id"] in brands_seen, event.type
    # Fresh ids each time: a second demo never collides with the first.
    assert set(build_plan(upstream).organizations).isdisjoint(plan.organizations)


async def test_the_reviewer_approves_after_a_delay_and_rejects_every_third() -> None:
    clock = Clock()
    board = Board(now=clock)
    sent: list[Envelope] = []

    class Recording(Upstream):
        async def send(self, event: Envelope, *, headers: Any = None) -> None:
            sent.append(event)

    demo = Demo(Recording(KafkaSettings(), keyring=Keyring.generate()), board, review_delay_s=3.0)
    org = demo.plan.organizations[0]
    pending = []
    for _ in range(4):
        run_id, pending_id = str(uuid.uuid4()), str(uuid.uuid4())
        pending.append(pending_id)
        for key in ("draft", "debit"):
            event = run_events(run_id, pending_id, requires_approval=True)[key]
            board.apply(message("x", Envelope.model_validate({**json.loads(event.to_json()), "organizationid": org})))
    # Someone else's draft is never reviewed by the demo.
    other = run_events(str(uuid.uuid4()), str(uuid.uuid4()), requires_approval=True)
    board.apply(message("x", other["draft"]))
    board.apply(message("x", other["debit"]))

    assert await demo.review() == []  # nobody has read them yet
    clock.now += 3.5
    decisions = await demo.review()
    assert [d for _, d in decisions] == [
        "PendingPostApproved",
        "PendingPostApproved",
        "PendingPostRejected",
        "PendingPostApproved",
    ]
    assert [e.data["pending_post_id"] for e in sent] == pending
    assert {str(e.organizationid) for e in sent} == {org}
    assert await demo.review() == []  # each is decided once
