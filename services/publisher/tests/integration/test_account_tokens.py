"""Tokens bound to their owner in transit, and which token pair is the fresher (issue 16), on
the real database: events handled as the consumer does (inbox, outbox, dead letters). Given
these events, expect those rows and those dead letters (the harness is in conftest.py; the
publisher's own refresh is in test_token_refresh_and_reauth.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_shared.crypto import Keyring, account_transit_aad
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration


T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_ciphertext_moved_to_another_account_or_organization_is_dead_lettered(
    db: Database, harness_with: Any
) -> None:
    world = harness_with({})
    a, b = await world.org(), await world.org()
    owner, other, elsewhere = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    access = a.seal("plain-access-of-the-owner", owner)
    assert await world.send(a.account_event(owner, access=access)) == "handled"
    assert await world.opened(owner) == "plain-access-of-the-owner"
    before = await world.account(owner)

    made_for_elsewhere = a.seal("plain-made-for-elsewhere", elsewhere)
    moved = [
        a.account_event(other, access=access),  # to another account of the same organization
        b.account_event(elsewhere, access=made_for_elsewhere),  # the same account id, another organization
        a.account_event(other, refresh=access),  # only the refresh token moved
        a.account_event(owner, access=access, type_name="SocialAccountUpdated", refresh=made_for_elsewhere),
    ]
    for event in moved:
        assert await world.send(event) == "dead_lettered"

    letters = await world.dead_letters()
    assert [(x["event_id"], x["error_kind"]) for x in letters] == [(str(e.id), "token_not_for_account") for e in moved]
    assert "another account or organization" in letters[0]["error"]
    assert "plain-" not in json.dumps(letters)
    # Nothing of theirs was stored: no other account, and the owner's row as it was.
    ids = {str(r["id"]) for r in await db.pool.fetch("SELECT id FROM social_accounts")}
    assert ids == {owner}
    assert await world.account(owner) == before


async def test_a_ciphertext_under_a_key_this_service_lacks_is_rejected_as_such(harness_with: Any) -> None:
    world = harness_with({})
    org = await world.org()
    account = str(uuid.uuid4())
    foreign = Keyring.generate((7,)).encrypt("x", associated_data=account_transit_aad(org.id, account))
    assert await world.send(org.account_event(account, access=foreign)) == "dead_lettered"
    [letter] = await world.dead_letters()
    assert letter["error_kind"] == "rejected" and "key this service does not hold" in letter["error"]


async def test_an_older_token_pair_is_ignored_and_an_equal_or_newer_one_taken(harness_with: Any) -> None:
    world = harness_with({})
    org = await world.org()
    account = str(uuid.uuid4())

    async def update(plaintext: str, issued_at: datetime | None, **changes: Any) -> None:
        event = org.account_event(
            account,
            access=org.seal(plaintext, account),
            issued_at=issued_at,
            type_name="SocialAccountUpdated",
            **changes,
        )
        assert await world.send(event) == "handled"

    assert await world.send(org.account_event(account, access=org.seal("one", account), issued_at=T0)) == "handled"

    await update("older", T0 - timedelta(seconds=1), handle="@renamed")
    row = await world.account(account)
    assert await world.opened(account) == "one" and row["tokens_issued_at"] == T0
    assert row["handle"] == "@renamed"  # the rest of the state is still applied
    await update("undated", None)
    assert await world.opened(account) == "one"

    await update("one again", T0)  # the same instant: a redelivery or an echo, taken
    assert await world.opened(account) == "one again"
    await update("two", T0 + timedelta(microseconds=1))
    row = await world.account(account)
    assert await world.opened(account) == "two" and row["tokens_issued_at"] == T0 + timedelta(microseconds=1)


async def test_undated_pairs_replace_each_other_as_before(harness_with: Any) -> None:
    world = harness_with({})
    org = await world.org()
    account = str(uuid.uuid4())
    assert await world.send(org.account_event(account, access=org.seal("first", account))) == "handled"
    update = org.account_event(account, access=org.seal("second", account), type_name="SocialAccountUpdated")
    assert await world.send(update) == "handled"
    assert await world.opened(account) == "second"
    dated = org.account_event(account, access=org.seal("dated", account), issued_at=T0)
    assert await world.send(dated) == "handled"
    assert await world.opened(account) == "dated"
