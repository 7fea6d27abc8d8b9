"""`hopcast dlq list` and `hopcast dlq replay` on what the running services dead-lettered: a link
to an account the publisher did not know yet is dead-lettered; once the account is connected, the
replay makes it handled, and the brand publishes on that account. Replaying again changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hopcast_shared.crypto import account_transit_aad
from hopcast_shared.topics import PUBLISHER
from hopcast_stack.probe import World

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HOPCAST = str(Path(sys.executable).parent / "hopcast")


def hopcast(world: World, *args: str) -> str:
    # The services' Kafka and databases: dead letters are kept whole in each service's database.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}, **world.services.env()}
    result = subprocess.run([HOPCAST, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def letters(world: World, service: str) -> list[dict]:
    return [json.loads(line) for line in hopcast(world, "dlq", "list", service, "--json").splitlines() if line.strip()]


async def test_a_dead_lettered_link_is_listed_and_replayed_after_the_fix(world: World) -> None:
    org = await world.org()
    account = str(uuid.uuid4())
    token = f"plain-replay-{uuid.uuid4().hex}"
    world.plaintexts.append(token)
    link = org.event("BrandAccountLinked", brand_profile_id=org.brand, social_account_id=account, is_default=True)
    await world.send(link)
    deadline = time.monotonic() + 60
    while not [r for r in world.recorder.dead_letters() if r.value.get("event_id") == str(link.id)]:
        assert time.monotonic() < deadline, "the link was not dead-lettered"
        await asyncio.sleep(0.2)

    listed = [letter for letter in letters(world, "publisher") if letter["event_id"] == str(link.id)]
    assert [(x["event_type"], x["error_kind"], x["attempts"]) for x in listed] == [
        ("BrandAccountLinked", "rejected", 1)
    ]
    assert "unknown social account" in listed[0]["error"]
    assert listed[0]["original_json"]["data"]["social_account_id"] == account
    # The other services read the same message and had nothing to say about it.
    for service in ("scheduler", "content", "billing"):
        assert not [x for x in letters(world, service) if x["event_id"] == str(link.id)]

    # The fix: the account is connected (on a platform the brand had no account on yet).
    await world.send(
        org.event(
            "SocialAccountConnected",
            social_account_id=account,
            platform="LINKEDIN",
            handle="@replayed",
            access_token=world.services.keyring.encrypt(token, associated_data=account_transit_aad(org.id, account)),
            refresh_token=None,
        ),
        org.event(
            "ScheduleUpdated",
            schedule_id=org.schedule,
            brand_profile_id=org.brand,
            timezone="UTC",
            times=["03:00"],
            days_of_week=[(time.gmtime().tm_wday + 4) % 7],
            platforms=["LINKEDIN"],
            generation_mode="autopilot",
        ),
    )
    await world.upstream.wait_consumed()
    _, before = await world.run(org)
    assert before == "PUBLISH_FAILED"  # no LinkedIn account linked to the brand yet

    assert hopcast(world, "dlq", "replay", "publisher", "--event-id", str(link.id)).strip() == (
        "replayed 1 dead letter(s) of publisher"
    )
    await world.quiet()
    run, after = await world.run(org)
    assert after == "PUBLISHED"
    [post] = world.events("PostPublished", topic=PUBLISHER, run_id=run)
    assert (post["data"]["platform"], post["data"]["social_account_id"]) == ("LINKEDIN", account)

    # Replaying again is safe: handled once already, so a duplicate everywhere, no new dead letter.
    count = len(letters(world, "publisher"))
    assert "replayed 1" in hopcast(world, "dlq", "replay", "publisher", "--event-id", str(link.id))
    await world.quiet()
    assert len(letters(world, "publisher")) == count
    assert "would replay" in hopcast(world, "dlq", "replay", "publisher", "--type", "BrandAccountLinked", "--dry-run")
