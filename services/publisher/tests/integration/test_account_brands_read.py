"""`GET /social-accounts/{id}/brands` (issue 22, the seed's getAccountBrands): the brands of the
account's organization that use it, as links and unlinks arrive through the consumer, read
through the kernel's router with a bearer token: the owner's token reads it, another
organization's account is the same 404 as a missing one, no token is 401."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hopcast_publisher.entrypoints.http import routes
from hopcast_shared.auth import TokenVerifier, issue_token
from hopcast_shared.db import Database
from hopcast_shared.http import JsonRouter
from hopcast_shared.settings import HttpAuthSettings

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "https://idp.test", "hopcast-reads"
KEY = ec.generate_private_key(ec.SECP256R1())


class _Runtime:
    def __init__(self, db: Database) -> None:
        self.db = db


def _router(db: Database) -> JsonRouter:
    public = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier = TokenVerifier.from_settings(
        HttpAuthSettings(public_key=public.decode(), issuer=ISSUER, audience=AUDIENCE)  # type: ignore[call-arg]
    )

    async def nothing_else(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError(f"{scope['path']} is not a JSON route")

    return JsonRouter(routes(_Runtime(db)), nothing_else, verifier=verifier)  # type: ignore[arg-type]


def _bearer(*orgs: str) -> str:
    private = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return "Bearer " + issue_token(private, orgs, issuer=ISSUER, audience=AUDIENCE, algorithm="ES256")


async def _get(router: JsonRouter, path: str, authorization: str | None) -> tuple[int, Any]:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": headers}
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    await router(scope, receive, send)
    return answer["status"], json.loads(answer["body"])


async def test_the_brands_that_use_an_account_follow_links_and_unlinks_and_only_its_organization_reads_them(
    harness: Any, db: Database
) -> None:
    ours, theirs = await harness.tenant(), await harness.tenant()
    second_brand = str(uuid.uuid4())
    assert await harness.send(ours.event("BrandProfileCreated", brand_profile_id=second_brand, name="Second")) == (
        "handled"
    )
    account = await ours.account("MASTODON", default=True)  # linked to ours.brand as its default
    for brand, default in ((second_brand, False), (ours.brand, True)):  # a redelivered link changes nothing
        linked = ours.event("BrandAccountLinked", brand_profile_id=brand, social_account_id=account, is_default=default)
        assert await harness.send(linked) == "handled"
    unused = await ours.account("BLUESKY")
    unlinked = ours.event("BrandAccountUnlinked", brand_profile_id=ours.brand, social_account_id=unused)
    assert await harness.send(unlinked) == "handled"
    foreign = await theirs.account("MASTODON")
    router = _router(db)

    status, body = await _get(router, f"/social-accounts/{account}/brands", _bearer(ours.org))
    assert status == 200, body
    assert (body["social_account_id"], body["organization_id"], body["platform"]) == (account, ours.org, "MASTODON")
    assert [(b["brand_profile_id"], b["is_default"]) for b in body["brands"]] == [
        (ours.brand, True),
        (second_brand, False),
    ]
    assert all(b["linked_at"].endswith("Z") and b["brand_deleted_at"] is None for b in body["brands"])
    assert body["brands"][1]["name"] == "Second"

    # An account no brand uses any more answers with no brands, not 404.
    status, body = await _get(router, f"/social-accounts/{unused}/brands", _bearer(ours.org))
    assert status == 200 and body["brands"] == []

    # A deleted brand's link is still shown, marked.
    assert await harness.send(ours.event("BrandProfileDeleted", brand_profile_id=second_brand)) == "handled"
    status, body = await _get(router, f"/social-accounts/{account}/brands", _bearer(ours.org))
    assert [b["brand_deleted_at"] is not None for b in body["brands"]] == [False, True]

    # Another organization's account is the same 404 as one that does not exist; no token is 401.
    other = await _get(router, f"/social-accounts/{foreign}/brands", _bearer(ours.org))
    missing = await _get(router, f"/social-accounts/{uuid.uuid4()}/brands", _bearer(ours.org))
    assert other == missing == (404, {"error": "not found"})
    status, body = await _get(router, f"/social-accounts/{foreign}/brands", _bearer(theirs.org))
    assert status == 200 and body["organization_id"] == theirs.org and len(body["brands"]) == 1
    assert (await _get(router, f"/social-accounts/{account}/brands", None))[0] == 401
    assert (await _get(router, "/social-accounts/not-a-uuid/brands", _bearer(ours.org)))[0] == 400


async def test_the_read_uses_the_accounts_index(db: Database) -> None:
    """The links are found by brand_accounts_account, not by reading every link of every brand."""
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetchval(
            """
            EXPLAIN (FORMAT JSON)
            SELECT l.brand_profile_id FROM brand_accounts l LEFT JOIN brands b ON b.id = l.brand_profile_id
            WHERE l.social_account_id = $1 AND l.organization_id = $2
            """,
            uuid.uuid4(),
            uuid.uuid4(),
        )
    assert "brand_accounts_account" in json.dumps(plan)
