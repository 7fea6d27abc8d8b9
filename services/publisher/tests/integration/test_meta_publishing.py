"""The Meta adapters in the publishing loop, on the real database, against their fakes: a post
goes out on Facebook and Threads, Instagram (which needs media) fails MEDIA_REJECTED with no
call, and a Page's business-use-case limit defers Facebook (PostPublishDeferred) until Meta's
estimated time to regain access."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.facebook import FacebookAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.instagram import InstagramAdapter
from hopcast_publisher.adapters.platforms.threads import ThreadsAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, Fault, serve
from hopcast_publisher.testing_meta import FakeFacebook, FakeInstagram, FakeThreads, graph_error

pytestmark = pytest.mark.integration
OPTIONS = AdapterOptions(egress=LOOPBACK_EGRESS)


async def test_a_post_goes_out_on_facebook_and_threads_and_instagram_without_media_is_refused(
    harness_with: Any,
) -> None:
    facebook, threads, instagram = FakeFacebook(), FakeThreads(), FakeInstagram()
    async with serve(facebook) as fb_url, serve(threads) as th_url, serve(instagram) as ig_url:
        adapters = {
            "FACEBOOK": FacebookAdapter(api_url=fb_url, version="v27.0", options=OPTIONS),
            "THREADS": ThreadsAdapter(api_url=th_url, version="v1.0", options=OPTIONS, poll_interval_s=0.05),
            "INSTAGRAM": InstagramAdapter(api_url=ig_url, version="v27.0", options=OPTIONS),
        }
        h = harness_with(adapters)
        tenant = await h.tenant()
        await tenant.account("FACEBOOK", default=True, token="good-access", external_account_id=facebook.page_id)  # noqa: S106
        await tenant.account("THREADS", default=True, token="good-access", external_account_id=threads.user_id)  # noqa: S106
        await tenant.account("INSTAGRAM", default=True, token="good-access", external_account_id=instagram.user_id)  # noqa: S106
        post = tenant.post_events(platforms=["FACEBOOK", "THREADS", "INSTAGRAM"])
        await h.deliver(post, "post", "debit")
        assert await h.publish() == 1
        for adapter in adapters.values():
            await adapter.close()

    published = {e["data"]["platform"]: e["data"] for e in await h.events("PostPublished", "t.publisher.events")}
    assert set(published) == {"FACEBOOK", "THREADS"}
    assert published["FACEBOOK"]["external_id"] == facebook.posts[0]["id"]
    assert published["THREADS"]["external_id"] == threads.posts[0]["id"]
    assert threads.posts[0]["text"] and facebook.posts[0]["message"]
    [failed] = await h.events("PostPublishFailed", "t.publisher.events")
    assert (failed["data"]["platform"], failed["data"]["reason"]) == ("INSTAGRAM", "MEDIA_REJECTED")
    assert instagram.calls == []
    [completed] = await h.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "PARTIALLY_PUBLISHED"


async def test_a_page_business_use_case_limit_defers_facebook_until_access_is_regained(harness_with: Any) -> None:
    facebook = FakeFacebook()
    usage = {facebook.page_id: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 20}]}
    status, _, body = graph_error(80001, "There have been too many calls to this Page account")
    facebook.fail_next(Fault(status=status, body=body, headers={"X-Business-Use-Case-Usage": json.dumps(usage)}))
    async with serve(facebook) as fb_url:
        adapter = FacebookAdapter(api_url=fb_url, version="v27.0", options=OPTIONS)
        h = harness_with({"FACEBOOK": adapter})
        tenant = await h.tenant()
        await tenant.account("FACEBOOK", default=True, token="good-access", external_account_id=facebook.page_id)  # noqa: S106
        post = tenant.post_events(platforms=["FACEBOOK"])
        await h.deliver(post, "post", "debit")
        before = datetime.now(UTC)
        assert await h.publish() == 1
        await adapter.close()

    [deferred] = await h.events("PostPublishDeferred", "t.publisher.events")
    assert (deferred["data"]["platform"], deferred["data"]["reason"]) == ("FACEBOOK", "RATE_LIMITED")
    wait = (datetime.fromisoformat(deferred["data"]["retry_at"].replace("Z", "+00:00")) - before).total_seconds()
    assert 19 * 60 <= wait <= 21 * 60
    assert facebook.posts == [] and await h.events("PostPublishFailed") == []


async def test_a_threads_token_about_to_expire_is_refreshed_from_itself_before_publishing(harness_with: Any) -> None:
    threads = FakeThreads()
    async with serve(threads) as th_url:
        adapter = ThreadsAdapter(api_url=th_url, version="v1.0", options=OPTIONS, poll_interval_s=0.05)
        world = harness_with({"THREADS": adapter})
        org = await world.org()
        account = str(uuid.uuid4())
        soon = datetime.now(UTC) + timedelta(seconds=30)
        connected = org.account_event(
            account,
            platform="THREADS",
            external_account_id=threads.user_id,
            access=org.seal("good-access", account),
            refresh=None,  # a long-lived Threads token refreshes itself
            token_expires_at=org.rfc3339(soon),
        )
        assert await world.send(connected) == "handled"
        await org.link(account)
        await org.post("THREADS")
        await world.publish()
        await adapter.close()

    assert ("GET", "/refresh_access_token") in threads.calls and len(threads.posts) == 1
    [refreshed] = await world.events("SocialAccountTokensRefreshed")
    assert refreshed["data"]["social_account_id"] == account
    assert refreshed["data"]["refresh_token"] is None
    assert "good-access-renewed" not in json.dumps(refreshed)  # sealed, never plaintext
    assert await world.opened(account) == "good-access-renewed"
