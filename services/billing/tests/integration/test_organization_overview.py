"""Billing's part of an organization's overview (issue 22): credits remaining by bucket (the
period's, the top-ups') and the period's end, read through the kernel's HTTP layer with tokens
on the real database, after a subscription, a top-up and a debit taken through the consumer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_billing.entrypoints.http import routes
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import CONTENT

pytestmark = pytest.mark.integration


class _Runtime:
    def __init__(self, db: Database) -> None:
        self.db = db


async def test_the_overview_shows_credits_remaining_by_bucket(
    db: Database, consumer: EventConsumer, new_org: Any, http_reads: Any
) -> None:
    org, topped_up_only = new_org(), new_org()
    await consumer.handle_record(as_record(org.period(10, datetime(2027, 1, 1, tzinfo=UTC))))
    await consumer.handle_record(as_record(org.grant(4)))
    # GENERATE 1 + PUBLISH 2 (two platforms): taken from the period's credits first.
    await consumer.handle_record(as_record(org.post(["TWITTER", "LINKEDIN"]), topic=CONTENT))
    await consumer.handle_record(as_record(topped_up_only.grant(7)))

    reads = http_reads(routes(_Runtime(db)))  # type: ignore[arg-type]
    status, body = await reads.get(f"/organizations/{org.id}/overview", organizations=[org.id])
    assert status == 200, body
    assert body == {
        "organization_id": org.id,
        "credits_remaining": 11,
        "period_credits": 7,
        "topup_credits": 4,
        "period_end": "2027-01-31T00:00:00+00:00",
    }
    status, body = await reads.get(f"/organizations/{topped_up_only.id}/overview", organizations=[topped_up_only.id])
    assert status == 200
    assert (body["credits_remaining"], body["period_credits"], body["topup_credits"], body["period_end"]) == (
        7,
        0,
        7,
        None,
    )


async def test_another_organizations_overview_is_404_and_no_token_401(
    db: Database, consumer: EventConsumer, new_org: Any, http_reads: Any
) -> None:
    a, b = new_org(), new_org()
    await consumer.handle_record(as_record(b.grant(3)))
    reads = http_reads(routes(_Runtime(db)))  # type: ignore[arg-type]
    assert await reads.get(f"/organizations/{b.id}/overview", organizations=[a.id]) == (404, {"error": "not found"})
    assert (await reads.get(f"/organizations/{b.id}/overview"))[0] == 401
    assert (await reads.get(f"/organizations/{b.id}/overview", organizations=[b.id]))[1]["credits_remaining"] == 3
