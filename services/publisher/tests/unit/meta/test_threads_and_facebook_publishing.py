"""Threads and Facebook Pages against fakes that follow their documented protocols: Threads'
TEXT/IMAGE/CAROUSEL containers, 500 characters (501 refused), alt texts, th_refresh_token;
a Page's feed, one photo, several photos attached to one post, and a lost answer after the post
yielding exactly one; Graph rate-limit headers deferring the post."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hopcast_publisher.adapters.platforms.base import PostRequest, PublishFailure
from hopcast_publisher.adapters.platforms.rate_limits import PublishDeferred
from hopcast_publisher.testing import Fault
from hopcast_publisher.testing_meta import FakeFacebook, FakeThreads, graph_error, image, video
from hopcast_shared.contract import DeferralReason, PublishFailureReason

LOST = Fault(delay_s=1.2, create=True)


async def test_threads_takes_500_characters_and_refuses_501_before_any_call(
    threads: tuple[FakeThreads, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = threads
    adapter, account = meta("THREADS", fake, base_url)
    text = "a" * 496 + "😷"  # 496 + the emoji's 4 UTF-8 bytes: 500
    assert await adapter.text_refusal("THREADS", text, api_base_url=None) is None
    refusal = await adapter.text_refusal("THREADS", text + "b", api_base_url=None)
    assert refusal is not None and "501 characters over the limit of 500" in refusal
    published = await adapter.publish(account, post(text), resumed=False, on_refreshed=no_refresh)
    (container,) = fake.containers.values()
    assert container["form"] == {"media_type": "TEXT", "text": text}
    assert [p["id"] for p in fake.posts] == [published.external_id]
    # Sent anyway, Threads refuses it: PLATFORM_REJECTED, nothing posted.
    with pytest.raises(PublishFailure) as refused:
        await adapter.publish(account, post(text + "b"), resumed=False, on_refreshed=no_refresh)
    assert refused.value.reason is PublishFailureReason.PLATFORM_REJECTED and len(fake.posts) == 1
    await adapter.close()


async def test_a_threads_carousel_carries_each_alt_text_and_a_lost_answer_posts_once(
    threads: tuple[FakeThreads, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = threads
    fake.in_progress_polls = 1
    fake.fail_next(LOST)
    adapter, account = meta("THREADS", fake, base_url)
    request = post("Two cups", media=[image(1, alt="a cortado"), video(2)])
    published = await adapter.publish(account, request, resumed=False, on_refreshed=no_refresh)
    forms = [c["form"] for c in fake.containers.values()]
    assert forms[0] == {
        "media_type": "IMAGE",
        "image_url": "https://cdn.example/img/1.jpg",
        "alt_text": "a cortado",
        "is_carousel_item": "true",
    }
    assert forms[1]["media_type"] == "VIDEO" and forms[2]["media_type"] == "CAROUSEL"
    assert [p["id"] for p in fake.posts] == [published.external_id] and fake.containers_made() == 3
    await adapter.close()


async def test_threads_refreshes_its_long_lived_token_with_th_refresh_token(
    threads: tuple[FakeThreads, str], meta: Callable
) -> None:
    fake, base_url = threads
    adapter, account = meta("THREADS", fake, base_url)
    tokens = await adapter.refresh(account)
    assert tokens.access_token == "good-access-renewed"  # noqa: S105
    assert ("GET", "/refresh_access_token") in fake.calls
    await adapter.close()


async def test_a_business_use_case_limit_defers_threads_until_access_is_regained(
    threads: tuple[FakeThreads, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = threads
    usage = {"17841400000000001": [{"type": "threads", "call_count": 100, "estimated_time_to_regain_access": 30}]}
    status, _, body = graph_error(80002, "There have been too many calls to this account", status=400)
    fake.fail_next(Fault(status=status, body=body, headers={"X-Business-Use-Case-Usage": json.dumps(usage)}))
    adapter, account = meta("THREADS", fake, base_url)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account, post(), resumed=False, on_refreshed=no_refresh)
    assert deferred.value.reason is DeferralReason.RATE_LIMITED
    in_30 = datetime.now(UTC) + timedelta(minutes=30)
    assert abs((deferred.value.retry_at - in_30).total_seconds()) < 30
    assert fake.posts == []
    await adapter.close()


async def test_a_page_post_of_text_of_one_photo_and_of_several_photos(
    facebook: tuple[FakeFacebook, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = facebook
    adapter, account = meta("FACEBOOK", fake, base_url)
    text = await adapter.publish(account, post("Open at 7"), resumed=False, on_refreshed=no_refresh)
    one = await adapter.publish(account, post("One cup", media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    three = [image(n, alt=f"cup {n}") for n in range(3)]
    many = await adapter.publish(account, post("Three cups", media=three), resumed=False, on_refreshed=no_refresh)
    posts = {p["id"]: p["form"] for p in fake.posts}
    assert set(posts) == {text.external_id, one.external_id, many.external_id}
    assert posts[text.external_id]["edge"] == "feed" and posts[text.external_id]["message"] == "Open at 7"
    assert posts[one.external_id]["edge"] == "photos"
    assert posts[one.external_id]["alt_text_custom"] == "A flat white on a wooden table"
    assert posts[many.external_id]["edge"] == "feed" and len(posts[many.external_id]["attached"]) == 3
    assert [p["alt_text_custom"] for p in fake.photos.values()] == ["cup 0", "cup 1", "cup 2"]
    assert all(p["published"] == "false" for p in fake.photos.values())
    assert one.external_url == f"https://www.facebook.com/{one.external_id}"
    await adapter.close()


async def test_a_lost_answer_after_a_page_post_yields_exactly_one_post_and_its_photos_once(
    facebook: tuple[FakeFacebook, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = facebook
    fake.fail_next(LOST)
    adapter, account = meta("FACEBOOK", fake, base_url)
    published = await adapter.publish(
        account, post("Three cups", media=[image(1), image(2)]), resumed=False, on_refreshed=no_refresh
    )
    assert [p["id"] for p in fake.posts] == [published.external_id]
    assert len(fake.photos) == 2
    await adapter.close()


async def test_a_page_video_goes_alone_and_a_video_with_photos_is_refused(
    facebook: tuple[FakeFacebook, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = facebook
    adapter, account = meta("FACEBOOK", fake, base_url)
    await adapter.publish(account, post("A pour", media=[video(1)]), resumed=False, on_refreshed=no_refresh)
    assert fake.posts[0]["form"]["edge"] == "videos"
    assert fake.posts[0]["form"]["file_url"] == "https://cdn.example/clip/1.mp4"
    with pytest.raises(PublishFailure) as refused:
        await adapter.publish(
            account, post("Mixed", media=[video(1), image(2)]), resumed=False, on_refreshed=no_refresh
        )
    assert refused.value.reason is PublishFailureReason.MEDIA_REJECTED and len(fake.posts) == 1
    await adapter.close()


async def test_a_used_up_app_usage_defers_the_page_post_and_holds_the_account(
    facebook: tuple[FakeFacebook, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = facebook
    usage = json.dumps({"call_count": 100, "total_cputime": 12, "total_time": 20})
    status, _, body = graph_error(4, "Application request limit reached")
    fake.fail_next(Fault(status=status, body=body, headers={"X-App-Usage": usage}))
    adapter, account = meta("FACEBOOK", fake, base_url)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account, post(), resumed=False, on_refreshed=no_refresh)
    assert deferred.value.retry_at > datetime.now(UTC) + timedelta(minutes=10)
    assert adapter.limiter.block_of(account.social_account_id) is not None
    assert fake.posts == []
    await adapter.close()


async def test_page_tokens_are_not_refreshed_and_a_retired_version_fails_at_once(
    facebook: tuple[FakeFacebook, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = facebook
    adapter, account = meta("FACEBOOK", fake, base_url, version="v19.0")
    assert not adapter.refreshes_access_token
    with pytest.raises(PublishFailure) as no_refresh_failure:
        await adapter.refresh(account)
    assert no_refresh_failure.value.reason is PublishFailureReason.TOKEN_INVALID
    with pytest.raises(PublishFailure) as retired:
        await adapter.publish(account, post(), resumed=False, on_refreshed=no_refresh)
    assert retired.value.reason is PublishFailureReason.API_VERSION_RETIRED and len(fake.calls) == 1
    await adapter.close()


async def test_threads_defers_on_a_used_up_cap_and_fails_a_retired_version_at_once(
    threads: tuple[FakeThreads, str], meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = threads
    fake.quota_usage = 250
    adapter, account = meta("THREADS", fake, base_url)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account, post(), resumed=False, on_refreshed=no_refresh)
    assert deferred.value.reason is DeferralReason.DAILY_CAP and "250 of its 250" in deferred.value.detail
    assert fake.containers_made() == 0
    retired, _ = meta("THREADS", fake, base_url, version="v0.9")
    with pytest.raises(PublishFailure) as failed:
        await retired.publish(account, post(), resumed=False, on_refreshed=no_refresh)
    assert failed.value.reason is PublishFailureReason.API_VERSION_RETIRED
    assert "PUBLISHER_THREADS_API_VERSION" in failed.value.detail and fake.containers_made() == 0
    await adapter.close()
    await retired.close()
