"""No plaintext token anywhere after a full run: every table of every service's database, every
service log line, PostgreSQL's log, every outbound event and every dead letter are scanned for the
plaintexts the suite sent (encrypted under the services' keys with hopcast_shared.crypto, and once
as plaintext, which the contract refuses). Tampered and wrong-key ciphertexts are refused."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from hopcast_shared.crypto import Keyring, TokenDecryptError, account_transit_aad, owner_aad
from hopcast_shared.topics import UPSTREAM
from hopcast_stack.probe import World
from hopcast_stack.pytest_plugin import TestStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def table_texts(url: str) -> dict[str, list[str]]:
    """Every row of every table of the database, as PostgreSQL's text form of the row."""
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return {t: [r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" t')] for t in tables}
    finally:
        await conn.close()


def files_under(*roots: Path) -> dict[Path, str]:
    return {p: p.read_text("utf-8", "replace") for root in roots for p in sorted(root.rglob("*.log")) if p.is_file()}


async def test_no_plaintext_token_in_any_table_log_event_or_dead_letter(world: World, stack: TestStack) -> None:
    org = await world.org()
    _, outcome = await world.run(org)
    assert outcome == "PUBLISHED"
    # A plaintext where a ciphertext belongs, and a refresh token: both must stay out of sight.
    leaked = f"plain-secret-{uuid.uuid4().hex}"
    world.plaintexts.append(leaked)
    leaky = str(uuid.uuid4())
    bad = org.event(
        "SocialAccountConnected",
        social_account_id=leaky,
        platform="BLUESKY",
        handle="@leaky",
        access_token=world.services.keyring.encrypt("placeholder", associated_data=account_transit_aad(org.id, leaky)),
    )
    value = json.loads(bad.to_json())
    value["data"].update(access_token=leaked, refresh_token=leaked)
    await world.send_raw(UPSTREAM, json.dumps(value).encode(), key=org.id)
    deadline = time.monotonic() + 60
    while not [r for r in world.recorder.dead_letters() if r.value.get("event_id") == str(bad.id)]:
        assert time.monotonic() < deadline, "the plaintext token was not dead-lettered"
        await asyncio.sleep(0.2)
    await world.quiet()

    secrets = list(dict.fromkeys(world.plaintexts))
    assert len(secrets) >= 3

    def hits(text: str) -> list[str]:
        return [s for s in secrets if s in text]

    found: list[str] = []
    rows = 0
    for service, url in world.services.database_urls.items():
        for table, texts in (await table_texts(url)).items():
            rows += len(texts)
            found += [f"{service}.{table}: {s}" for text in texts for s in hits(text)]
    logs = files_under(world.services.state_dir, stack.postgres.log_file.parent)
    found += [f"{path}: {s}" for path, text in logs.items() for s in hits(text)]
    records = list(world.recorder.records.values())
    found += [f"{r.topic}@{r.offset}: {s}" for r in records for s in hits(r.raw.decode("utf-8", "replace"))]
    assert found == []
    print(f"secret scan: {len(secrets)} plaintexts, {rows} rows, {len(logs)} logs, {len(records)} records: none found")

    # The scan looked at real data: the organization is in the tables, logs and events it read.
    assert rows > 50 and len(logs) >= 5 and len(records) > 20
    assert any(org.id in r.raw.decode() for r in records)
    assert any(str(bad.id) in text for text in logs.values())  # the publisher logged the dead letter
    publisher = await table_texts(world.services.database_urls["publisher"])
    assert any(org.accounts["MASTODON"] in row for row in publisher["social_accounts"])
    # The dead letter of the plaintext kept the event, not the token.
    [letter] = [r for r in world.recorder.dead_letters() if r.value.get("event_id") == str(bad.id)]
    assert letter.value["error_kind"] == "data" and letter.value["consumer"] == "publisher"
    assert letter.value["original_json"]["data"]["handle"] == "@leaky"


async def test_stored_tokens_are_sealed_to_their_account(world: World) -> None:
    """What the publisher stores decrypts only with the services' keys and only as the account's own:
    a copy under another account's associated data, a flipped byte or another key is refused."""
    org = await world.org()
    conn = await asyncpg.connect(world.services.database_urls["publisher"])
    try:
        rows = await conn.fetch(
            "SELECT id, access_token FROM social_accounts WHERE organization_id = $1", uuid.UUID(org.id)
        )
    finally:
        await conn.close()
    assert len(rows) == 2
    keyring = world.services.keyring
    plain = {
        keyring.decrypt(r["access_token"], associated_data=owner_aad("social_account", str(r["id"]))) for r in rows
    }
    assert plain == set(org.tokens)
    token, owner = rows[0]["access_token"], rows[0]["id"]
    with pytest.raises(TokenDecryptError):
        keyring.decrypt(token, associated_data=owner_aad("social_account", str(rows[1]["id"])))
    with pytest.raises(TokenDecryptError):
        keyring.decrypt(
            token, associated_data=account_transit_aad(org.id, owner)
        )  # the stored form is not the transit one
    version, nonce, body = token.split(":")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(TokenDecryptError):
        keyring.decrypt(f"{version}:{nonce}:{flipped}", associated_data=owner_aad("social_account", str(owner)))
    with pytest.raises(TokenDecryptError):
        Keyring.generate((int(version[1:]),)).decrypt(token, associated_data=owner_aad("social_account", str(owner)))
