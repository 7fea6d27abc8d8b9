"""The "done when" of the content, billing and publisher issues, through Kafka alone, on the four
services as processes (what `make up` runs): facts on upstream.events, and, to act out a
redelivery, a copy of an outbound event written to its topic again."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from hopcast_shared.contract import Angle
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.topics import BILLING, CONTENT, PUBLISHER, UPSTREAM
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.services import ServiceSet

pytestmark = pytest.mark.e2e

# Ten materials about unrelated things, so none is a near-duplicate of another.
TOPICS = (
    "We roast every Tuesday so that every bag you get is less than a week old.",
    "Our bakery opens at six with sourdough loaves fermented for two full days.",
    "The cycling club rides the coastal loop on Sunday mornings, sixty kilometres at an easy pace.",
    "Learn to file your quarterly taxes online in under ten minutes with our checklist.",
    "The museum's new dinosaur hall shows a complete triceratops skeleton found in Montana.",
    "Adopt a rescue greyhound: they sleep eighteen hours a day and love soft blankets.",
    "Our plumbers fix leaking taps and blocked drains on the same day you call.",
    "The chess workshop teaches children three classic openings and how to castle safely.",
    "Spring tulip bulbs should be planted in autumn, fifteen centimetres deep, pointy end up.",
    "The jazz quartet plays standards by Monk and Coltrane every Friday night at the harbour bar.",
)


@pytest_asyncio.fixture(loop_scope="session")
async def raw(hopcast: ServiceSet) -> AsyncIterator[Callable[[str, dict[str, Any]], Any]]:
    """Write a copy of an event (its JSON) to a topic, keyed by its organization."""
    producer = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(hopcast.kafka))
    await producer.start()

    async def send(topic: str, value: dict[str, Any]) -> None:
        await producer.send_and_wait(
            hopcast.kafka.topic(topic), json.dumps(value).encode(), key=str(value["organizationid"]).encode()
        )

    try:
        yield send
    finally:
        await producer.stop()


async def test_content_drafts_with_an_angle_never_two_copies_and_skips_when_nothing_is_left(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    one, other = tenant(), tenant()
    same = TOPICS[0]
    await one.create(credits=300, accounts=("MASTODON",), materials=(same, TOPICS[1], same))
    await other.create(credits=300, accounts=("MASTODON",), materials=(same,))
    schedules = [await one.schedule(["MASTODON"]), await other.schedule(["MASTODON"])]
    await one.landed()

    runs = [await one.trigger(schedules[0]) for _ in range(4)]
    outcomes = [await dashboard.outcome(r) for r in runs]
    elsewhere = await other.trigger(schedules[1])
    assert await dashboard.outcome(elsewhere) == "PUBLISHED"  # another organization: its own draft
    await dashboard.settle()

    # Two drafts (the two different texts), then the copy is a duplicate, then nothing is left.
    assert outcomes == ["PUBLISHED", "PUBLISHED", "SKIPPED_DUPLICATE", "SKIPPED_DUPLICATE"]
    drafts = [d for r in runs for d in dashboard.events("PendingPostCreated", run=r)]
    assert len(drafts) == 2
    drafted = {d["data"]["material_id"] for d in drafts}
    copies = {one.materials[0], one.materials[2]}
    assert one.materials[1] in drafted and len(drafted & copies) == 1  # one copy of the same text, never both
    for draft in drafts + dashboard.events("PendingPostCreated", run=elsewhere):
        data = draft["data"]
        assert data["content"].strip() and data["angle"] in {a.value for a in Angle} and data["angle_reason"]
        assert data["max_similarity"] is None or data["max_similarity"] <= 0.85
    for run in runs[2:]:
        [skip] = dashboard.events("ScheduleRunSkipped", run=run)
        assert skip["data"]["reason"] == "ALL_CANDIDATES_DUPLICATE"
    assert all(len(dashboard.events("ScheduleRunCompleted", run=r)) == 1 for r in [*runs, elsewhere])

    empty = tenant()
    await empty.create(credits=300, accounts=("MASTODON",), materials=())
    schedule = await empty.schedule(["MASTODON"])
    await empty.landed()
    run = await empty.trigger(schedule)
    assert await dashboard.outcome(run) == "NO_MATERIAL"
    await dashboard.settle()
    [skip] = dashboard.events("ScheduleRunSkipped", run=run)
    assert skip["data"]["reason"] == "NO_READY_MATERIAL"
    assert len(dashboard.events("ScheduleRunCompleted", run=run)) == 1


async def test_with_5_credits_ten_2_credit_posts_give_two_debits_and_eight_rejections(
    tenant: Callable[[], Tenant], dashboard: Dashboard, raw: Callable[[str, dict[str, Any]], Any]
) -> None:
    t = tenant()
    await t.create(credits=5, accounts=("MASTODON",), materials=TOPICS)
    schedules = [await t.schedule(["MASTODON"]) for _ in TOPICS]  # GENERATE 1 + PUBLISH 1
    grant = t.event("CreditsGranted", grant_id=str(uuid.uuid4()), amount=4)
    await t.landed()
    runs = [await t.trigger(s) for s in schedules]
    outcomes = [await dashboard.outcome(r, within=60) for r in runs]
    await dashboard.settle()

    debits = [d for r in runs for d in dashboard.events("CreditsDebited", run=r)]
    assert sorted(d["data"]["balance_after"] for d in debits) == [1, 3]
    assert sorted(outcomes).count("INSUFFICIENT_CREDITS") == 8
    rejected = [d for r in runs for d in dashboard.events("CreditsDebitRejected", run=r)]
    assert len(rejected) == 8 and {(d["data"]["requested"], d["data"]["reason"]) for d in rejected} == {
        (2, "INSUFFICIENT_CREDITS")
    }
    assert await t.credits() == 1

    # A redelivered draft, and a second event for the same pending post, never debit twice.
    [paid] = [r for r in runs if dashboard.events("CreditsDebited", run=r)][:1]
    [draft] = dashboard.events("PendingPostCreated", run=paid)
    await raw(CONTENT, draft)
    await raw(CONTENT, {**draft, "id": str(uuid.uuid4())})
    # A grant delivered twice (the same grant_id, two event ids) counts once.
    await t.send(grant, t.event("CreditsGranted", grant_id=grant.data["grant_id"], amount=4))
    await t.landed()
    await dashboard.settle()
    assert len(dashboard.events("CreditsDebited", run=paid)) == 1
    assert await t.credits() == 5

    # The balance is where the ledger says.
    status, page = await t.hopcast.get_json("billing", f"/organizations/{t.org}/ledger?limit=100", organization=t.org)
    assert status == 200, page
    entries = page["entries"]
    assert sum(int(e["amount"]) for e in entries) == 5
    assert [e["action"] for e in entries].count("TOPUP") == 1


async def test_publisher_default_account_then_fallback_once_per_debit_and_no_plaintext_token(
    tenant: Callable[[], Tenant], dashboard: Dashboard, raw: Callable[[str, dict[str, Any]], Any]
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON",), materials=TOPICS[:3])
    default = t.accounts["MASTODON"]
    spare = str(uuid.uuid4())
    connected = t.event(
        "SocialAccountConnected",
        social_account_id=spare,
        platform="MASTODON",
        handle="@spare",
        access_token=t.upstream.encrypt_token(
            f"token-{uuid.uuid4().hex}", organization_id=t.org, social_account_id=spare
        ),
        refresh_token=None,
    )
    linked = t.event("BrandAccountLinked", brand_profile_id=t.brand, social_account_id=spare, is_default=False)
    await t.send(connected, linked)
    schedule = await t.schedule(["MASTODON", "LINKEDIN"])
    await t.landed()

    first = await t.trigger(schedule)
    assert await dashboard.outcome(first) == "PARTIALLY_PUBLISHED"  # no LINKEDIN account
    [published] = dashboard.events("PostPublished", run=first, topic=PUBLISHER)
    assert published["data"]["social_account_id"] == default
    [failed] = dashboard.events("PostPublishFailed", run=first)
    assert (failed["data"]["platform"], failed["data"]["reason"]) == ("LINKEDIN", "NO_ACCOUNT_FOR_PLATFORM")

    # A second debit event for the same pending post changes nothing.
    [debit] = dashboard.events("CreditsDebited", run=first)
    await raw(BILLING, {**debit, "id": str(uuid.uuid4())})
    # The default account is deleted: the next post goes to the other linked one.
    await t.send(t.event("SocialAccountDeleted", social_account_id=default))
    await t.landed()
    second = await t.trigger(schedule)
    assert await dashboard.outcome(second) == "PARTIALLY_PUBLISHED"
    await dashboard.settle()
    assert [p["data"]["social_account_id"] for p in dashboard.events("PostPublished", run=second, topic=PUBLISHER)] == [
        spare
    ]
    assert len(dashboard.events("PostPublished", run=first, topic=PUBLISHER)) == 1

    # A plaintext token is refused (publisher.dlq) and is in no event or dead letter.
    secret = f"plaintext-secret-{uuid.uuid4().hex}"
    leaky = str(uuid.uuid4())
    leaked = t.event(
        "SocialAccountConnected",
        social_account_id=leaky,
        platform="BLUESKY",
        handle="@leaky",
        access_token=t.upstream.encrypt_token("placeholder", organization_id=t.org, social_account_id=leaky),
        refresh_token=None,
    )
    value = json.loads(leaked.to_json())
    value["data"]["access_token"] = secret
    await raw(UPSTREAM, value)
    letters = await dashboard.wait(
        lambda: (
            [d for d in dashboard.dead_letters() if d.get("data", {}).get("event_id") == value["id"]]
            or [d for d in dashboard.dead_letters() if value["id"] in json.dumps(d)]
        )
    )
    assert letters
    assert all(secret not in json.dumps(m.value) and secret not in json.dumps(m.headers) for m in dashboard.messages)
