"""Content's part of an organization's overview (issue 22): its active brands and its ready
materials, read through the kernel's HTTP layer with tokens on the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_content.entrypoints.http import routes

pytestmark = pytest.mark.integration


async def test_the_overview_counts_live_brands_and_their_ready_materials(h: Any, texts: Any, http_reads: Any) -> None:
    t = await h.tenant()
    other = await h.tenant()
    await t.material(texts.a)
    archived = await t.material(texts.b)
    deleted = await t.material(texts.c)
    await t.material("", type="TEXT", media_urls=["https://cdn.example/x.png"])  # FAILED: not ready
    assert await h.send(t.event("MaterialArchived", material_id=archived)) == "handled"
    assert await h.send(t.event("MaterialDeleted", material_id=deleted)) == "handled"
    # A second brand with one ready material; a third, deleted, whose material no longer counts.
    second, gone = str(uuid.uuid4()), str(uuid.uuid4())
    for brand in (second, gone):
        assert await h.send(t.event("BrandProfileCreated", brand_profile_id=brand)) == "handled"
        await t.material(texts.c, brand_profile_id=brand)
    assert await h.send(t.event("BrandProfileDeleted", brand_profile_id=gone)) == "handled"
    await other.material(texts.a)

    class Runtime:
        db = h.db

    reads = http_reads(routes(Runtime(), h.settings))  # type: ignore[arg-type]
    status, body = await reads.get(f"/organizations/{t.org}/overview", organizations=[t.org])
    assert status == 200, body
    assert body == {"organization_id": t.org, "active_brands": 2, "ready_materials": 2}
    status, body = await reads.get(f"/organizations/{other.org}/overview", organizations=[other.org])
    assert (status, body["active_brands"], body["ready_materials"]) == (200, 1, 1)


async def test_another_organizations_overview_is_404_and_no_token_401(h: Any, http_reads: Any) -> None:
    a, b = await h.tenant(), await h.tenant()

    class Runtime:
        db = h.db

    reads = http_reads(routes(Runtime(), h.settings))  # type: ignore[arg-type]
    assert await reads.get(f"/organizations/{b.org}/overview", organizations=[a.org]) == (404, {"error": "not found"})
    assert (await reads.get(f"/organizations/{b.org}/overview"))[0] == 401
    # A token naming both reads both.
    assert (await reads.get(f"/organizations/{b.org}/overview", organizations=[a.org, b.org]))[0] == 200
