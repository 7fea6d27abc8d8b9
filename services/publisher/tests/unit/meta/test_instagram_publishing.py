"""Instagram against a fake that follows its content-publishing protocol: a container polled
until FINISHED, then media_publish; carousels of 2 to 10; JPEG only; no post without media; the
publishing cap and a lost answer after media_publish; a retired Graph version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hopcast_publisher.adapters.platforms.base import PostMedia, PostRequest, PublishFailure
from hopcast_publisher.adapters.platforms.rate_limits import PublishDeferred
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth
from hopcast_publisher.testing import Fault
from hopcast_publisher.testing_meta import FakeInstagram, graph_error, image, video
from hopcast_shared.contract import DeferralReason, PublishFailureReason, ReauthReason

Served = tuple[FakeInstagram, str]
LOST = Fault(delay_s=1.2, create=True)  # published, then no answer within the read timeout


async def test_an_image_is_published_once_its_container_is_finished(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    fake.in_progress_polls = 2
    adapter, account = meta("INSTAGRAM", fake, base_url)
    published = await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert [p["id"] for p in fake.posts] == [published.external_id]
    assert published.external_url == f"https://www.instagram.com/p/{published.external_id}"
    (container,) = fake.containers.values()
    assert container["form"] == {
        "image_url": "https://cdn.example/img/1.jpg",
        "alt_text": "A flat white on a wooden table",
        "caption": "Spring menu is out #coffee",
    }
    assert container["reads"] == 3  # IN_PROGRESS twice, then FINISHED
    await adapter.close()


async def test_a_carousel_of_ten_is_published_and_eleven_are_refused_unsent(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    adapter, account = meta("INSTAGRAM", fake, base_url)
    ten = [image(n, alt=f"photo {n}") for n in range(9)] + [video(9)]
    await adapter.publish(account, post(media=ten), resumed=False, on_refreshed=no_refresh)
    forms = [c["form"] for c in fake.containers.values()]
    assert [f.get("alt_text") for f in forms[:9]] == [f"photo {n}" for n in range(9)]
    assert forms[9] == {
        "media_type": "VIDEO",
        "video_url": "https://cdn.example/clip/9.mp4",
        "is_carousel_item": "true",
    }
    assert forms[10]["media_type"] == "CAROUSEL" and len(forms[10]["children"].split(",")) == 10
    assert len(fake.posts) == 1

    calls = len(fake.calls)
    eleven = [image(n) for n in range(11)]
    with pytest.raises(PublishFailure) as refused:
        await adapter.publish(account, post(media=eleven), resumed=False, on_refreshed=no_refresh)
    assert refused.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert "at most 10" in refused.value.detail
    assert len(fake.calls) == calls and len(fake.posts) == 1
    await adapter.close()


@pytest.mark.parametrize(
    ("media", "reason", "says"),
    [
        ([], PublishFailureReason.MEDIA_REJECTED, "needs an image or a video"),
        ([image(1, mime="image/png")], PublishFailureReason.MEDIA_REJECTED, "JPEG images only"),
        ([PostMedia("http://cdn.example/a.jpg")], PublishFailureReason.EGRESS_REFUSED, "not https"),
        ([PostMedia("https://10.1.2.3/a.jpg")], PublishFailureReason.EGRESS_REFUSED, "10.1.2.3"),
        ([PostMedia("https://mixed.example/a.jpg")], PublishFailureReason.EGRESS_REFUSED, "10.0.0.7"),
        ([PostMedia("https://user:pw@cdn.example/a.jpg")], PublishFailureReason.EGRESS_REFUSED, "credentials"),
    ],
)
async def test_media_meta_may_not_fetch_is_refused_before_any_call(
    instagram: Served,
    meta: Callable,
    post: Callable[..., PostRequest],
    no_refresh: Callable,
    media: list,
    reason: PublishFailureReason,
    says: str,
) -> None:
    fake, base_url = instagram
    adapter, account = meta("INSTAGRAM", fake, base_url)
    with pytest.raises(PublishFailure) as refused:
        await adapter.publish(account, post(media=media), resumed=False, on_refreshed=no_refresh)
    assert refused.value.reason is reason and says in refused.value.detail
    assert "pw" not in refused.value.detail
    assert fake.calls == []
    await adapter.close()


async def test_a_container_in_error_fails_media_rejected_and_an_expired_one_clearly(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    adapter, account = meta("INSTAGRAM", fake, base_url)
    fake.container_outcome = "ERROR"
    with pytest.raises(PublishFailure) as error:
        await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert error.value.reason is PublishFailureReason.MEDIA_REJECTED and "container ERROR" in error.value.detail
    fake.container_outcome = "EXPIRED"
    with pytest.raises(PublishFailure) as expired:
        await adapter.publish(account, post(media=[image(2)]), resumed=False, on_refreshed=no_refresh)
    assert expired.value.reason is PublishFailureReason.PLATFORM_REJECTED and "EXPIRED" in expired.value.detail
    assert fake.posts == []
    await adapter.close()


async def test_a_container_still_in_progress_is_polled_again_on_the_next_try_not_remade(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    fake.in_progress_polls = 12  # more than one try's polling budget
    adapter, account = meta("INSTAGRAM", fake, base_url, poll_budget_s=0.1, attempts=8)
    await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert fake.containers_made() == 1 and len(fake.posts) == 1
    await adapter.close()


async def test_a_lost_answer_after_media_publish_yields_exactly_one_post(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    fake.fail_next(LOST)
    adapter, account = meta("INSTAGRAM", fake, base_url)
    request = post(media=[image(1), image(2)])
    published = await adapter.publish(account, request, resumed=False, on_refreshed=no_refresh)
    assert [p["id"] for p in fake.posts] == [published.external_id]
    assert fake.containers_made() == 3  # two items and the carousel, made once
    # Resumed by another try later (after a crash): found, not posted again.
    again = await adapter.publish(account, request, resumed=True, on_refreshed=no_refresh)
    assert again.external_id == published.external_id and len(fake.posts) == 1
    await adapter.close()


async def test_a_resumed_post_found_by_its_caption_after_a_restart(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    request = post(media=[image(1)])
    first, account = meta("INSTAGRAM", fake, base_url)
    published = await first.publish(account, request, resumed=False, on_refreshed=no_refresh)
    restarted, _ = meta("INSTAGRAM", fake, base_url)  # no container kept in memory
    found = await restarted.publish(account, request, resumed=True, on_refreshed=no_refresh)
    assert found.external_id == published.external_id and len(fake.posts) == 1
    await first.close()
    await restarted.close()


async def test_a_used_up_publishing_cap_defers_the_post_before_any_container(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    fake.quota_usage = fake.quota_total
    adapter, account = meta("INSTAGRAM", fake, base_url)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert deferred.value.reason is DeferralReason.DAILY_CAP
    assert deferred.value.retry_at > datetime.now(UTC) + timedelta(minutes=50)
    assert fake.containers_made() == 0
    await adapter.close()


async def test_the_publishing_cap_answer_of_media_publish_defers_the_post(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    status, headers, body = graph_error(9, "Application request limit reached", 2207042, status=403)
    fake.fail_next(Fault(status=status, headers=headers, body=body))
    adapter, account = meta("INSTAGRAM", fake, base_url)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert deferred.value.reason is DeferralReason.DAILY_CAP and fake.posts == []
    await adapter.close()


async def test_a_retired_graph_version_fails_api_version_retired_without_retry(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    adapter, account = meta("INSTAGRAM", fake, base_url, version="v19.0")
    with pytest.raises(PublishFailure) as retired:
        await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert retired.value.reason is PublishFailureReason.API_VERSION_RETIRED
    assert "2635" in retired.value.detail and "PUBLISHER_GRAPH_API_VERSION" in retired.value.detail
    assert len(fake.calls) == 1
    await adapter.close()


async def test_a_refused_token_needs_reauth_and_a_long_lived_one_is_refreshed(
    instagram: Served, meta: Callable, post: Callable[..., PostRequest], no_refresh: Callable
) -> None:
    fake, base_url = instagram
    adapter, account = meta("INSTAGRAM", fake, base_url)
    tokens = await adapter.refresh(account)
    assert tokens.access_token == "good-access-renewed"  # noqa: S105
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC) + timedelta(days=59)
    assert adapter.refreshes_access_token

    fake.access_tokens.clear()
    with pytest.raises(NeedsReauth) as gone:
        await adapter.publish(account, post(media=[image(1)]), resumed=False, on_refreshed=no_refresh)
    assert gone.value.reauth is ReauthReason.UNAUTHORIZED
    with pytest.raises(NeedsReauth) as refused:
        await adapter.refresh(account)
    assert refused.value.reauth is ReauthReason.REFRESH_REJECTED
    await adapter.close()
