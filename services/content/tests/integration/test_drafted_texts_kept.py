"""Content keeps its own copy of each draft's exact text per platform (the texts it sends in
PendingPostCreated), so its reads have what the publisher posts. On the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_content.adapters.runs import Runs

pytestmark = pytest.mark.integration


async def test_a_draft_keeps_the_exact_text_of_each_platform(h: Any, tenant_of: Any, texts: Any) -> None:
    t = await tenant_of(h).create()
    await t.material(texts.a)
    data = h.drafted(await t.run(platforms=["TWITTER", "LINKEDIN", "MASTODON"]))["data"]
    assert set(data["texts"]) == {"TWITTER", "LINKEDIN", "MASTODON"}
    assert all(text.startswith(data["content"][:40]) for text in data["texts"].values())

    pending_post_id, org = uuid.UUID(data["pending_post_id"]), uuid.UUID(t.org)
    async with h.db.pool.acquire() as conn:
        runs = Runs(conn)
        assert await runs.drafted_texts(org, pending_post_id) == data["texts"]
        assert await runs.drafted_texts(uuid.uuid4(), pending_post_id) is None  # another organization's
