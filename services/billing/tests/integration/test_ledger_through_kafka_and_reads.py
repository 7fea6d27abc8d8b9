"""Billing as upstream and a dashboard see it: the whole service through Kafka (debits and
rejections on billing.events, runs ended on analytics.events, the metrics), and the HTTP reads
and the verify command agreeing with the ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from hopcast_billing.adapters.ledger import balance_of
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import as_record, eventually, read_events, send_event
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, UPSTREAM

pytestmark = pytest.mark.integration


async def test_with_5_credits_ten_2_credit_posts_give_two_debits_and_eight_rejections(
    billing: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, books_of: Any, new_org: Any
) -> None:
    org = new_org()
    grant = org.grant(5)
    await send_event(producer, kafka, UPSTREAM, grant)
    await send_event(producer, kafka, UPSTREAM, grant)  # delivered twice: counts once
    await send_event(producer, kafka, UPSTREAM, org.grant(0 + 1, grant.data["grant_id"]))  # same grant id
    # Grants travel on upstream.events, posts on content.events: Kafka orders neither against
    # the other, so the posts go out once the grant is in.
    org_id = uuid.UUID(org.id)

    async def granted() -> bool:
        return (await balance_of(billing.db.pool, org_id)).total == 5  # type: ignore[arg-type]

    await eventually(granted)
    posts = [org.post(["TWITTER"]) for _ in range(10)]
    debited_before = REGISTRY.get_sample_value("hopcast_billing_credits_debited_total") or 0
    rejected_labels = {"reason": "INSUFFICIENT_CREDITS"}
    rejected_before = REGISTRY.get_sample_value("hopcast_billing_debits_rejected_total", rejected_labels) or 0
    for post in posts:
        await send_event(producer, kafka, CONTENT, post)
    await send_event(producer, kafka, CONTENT, posts[0])  # redelivered

    events = await read_events(kafka, kafka.topic(BILLING), expect=10)
    debited = [e for e in events if e["type"] == "CreditsDebited"]
    rejected = [e for e in events if e["type"] == "CreditsDebitRejected"]
    assert [e["data"]["balance_after"] for e in debited] == [3, 1]
    assert len(rejected) == 8
    assert {e["data"]["pending_post_id"] for e in debited + rejected} == {p.data["pending_post_id"] for p in posts}
    completed = await read_events(kafka, kafka.topic(ANALYTICS), expect=8, event_type="ScheduleRunCompleted")
    assert len(completed) == 8 and {e["data"]["outcome"] for e in completed} == {"INSUFFICIENT_CREDITS"}
    assert (await balance_of(billing.db.pool, uuid.UUID(org.id))).total == 1  # type: ignore[arg-type]
    assert await books_of(billing.db).ledger_sum(org.id) == 1
    assert REGISTRY.get_sample_value("hopcast_billing_credits_debited_total") == debited_before + 4
    assert REGISTRY.get_sample_value("hopcast_billing_debits_rejected_total", rejected_labels) == rejected_before + 8


async def test_http_reads_and_verify_agree_with_the_ledger(
    db: Database, consumer: EventConsumer, database_url: str, monkeypatch: pytest.MonkeyPatch, new_org: Any
) -> None:
    from typer.testing import CliRunner

    from hopcast_billing.entrypoints.cli import app
    from hopcast_billing.entrypoints.http import routes

    org = new_org()
    await consumer.handle_record(as_record(org.period(10, datetime(2027, 1, 1, tzinfo=UTC))))
    await consumer.handle_record(as_record(org.grant(4)))
    await consumer.handle_record(as_record(org.post(["TWITTER", "LINKEDIN"]), topic=CONTENT))

    class Runtime:
        def __init__(self) -> None:
            self.db = db

    credits, ledger_page = routes(Runtime())[:2]  # type: ignore[arg-type]
    found = await credits.handler({"id": org.id}, {})
    assert found.status == 200
    assert (found.body["balance"], found.body["period_credits"], found.body["topup_credits"]) == (11, 7, 4)
    assert found.body["plan"] == "STARTER" and found.body["period_end"].startswith("2027-01-31")
    first = await ledger_page.handler({"id": org.id}, {"limit": "2"})
    assert [e["action"] for e in first.body["entries"]] == ["PUBLISH", "GENERATE"]
    rest = await ledger_page.handler({"id": org.id}, {"limit": "2", "before": str(first.body["next_before"])})
    assert [e["action"] for e in rest.body["entries"]] == ["TOPUP", "SUBSCRIPTION"]
    assert sum(e["amount"] for e in first.body["entries"] + rest.body["entries"]) == 11

    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    # The command runs its own event loop: give it a thread of its own.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["verify"])
    assert result.exit_code == 0, result.output
    # A balance changed behind the ledger's back is found.
    await db.pool.execute(
        "UPDATE balances SET topup_credits = topup_credits + 1 WHERE organization_id = $1", uuid.UUID(org.id)
    )
    result = await asyncio.to_thread(CliRunner().invoke, app, ["verify"])
    assert result.exit_code == 1 and f"MISMATCH {org.id}" in result.output
