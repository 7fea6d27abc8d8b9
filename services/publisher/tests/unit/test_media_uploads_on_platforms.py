"""Each adapter's media uploads and post against a fake that follows the platform's documented
upload protocol (`hopcast_publisher.testing_media`): the files go up once per account, are
reused on a retry, after a lost answer and by a second process, and a file over a limit fails
MEDIA_REJECTED with nothing uploaded and nothing posted."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.media_uploads import MediaUploads, MemoryMediaUploads
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostMedia,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpPlatformAdapter, HttpSettings
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.media import MediaOptions
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakePlatform, Fault, serve
from hopcast_publisher.testing_media import (
    MediaBluesky,
    MediaLinkedIn,
    MediaMastodon,
    MediaX,
    UploadFaults,
    image_bytes,
)
from hopcast_shared.contract import PublishFailureReason

POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=20.0)
TIMEOUT_S = 0.5
ORG = uuid.uuid4()
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 5000


class Setup:
    def __init__(self, name: str, fake: FakePlatform, url: str, uploads: MediaUploads, media_url: str) -> None:
        self.name, self.fake, self.url, self.uploads, self.media_url = name, fake, url, uploads, media_url
        self.account_id = uuid.uuid4()
        self.adapters: list[HttpPlatformAdapter] = []

    def adapter(self) -> HttpPlatformAdapter:
        """A new adapter (a new process) remembering uploads where the others do."""
        options = AdapterOptions(
            policy=POLICY,
            http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=TIMEOUT_S),
            egress=LOOPBACK_EGRESS,
            rng=random.Random(3),
            media=MediaOptions(
                MediaFetcher(LOOPBACK_EGRESS, timeout_s=2.0), self.uploads, poll_interval_s=0.01, poll_timeout_s=3.0
            ),
        )
        adapter: HttpPlatformAdapter
        if self.name == "BLUESKY":
            adapter = BlueskyAdapter(pds_url=self.url, options=options)
        elif self.name == "MASTODON":
            adapter = MastodonAdapter(client_id="c", client_secret="s", options=options)  # noqa: S106
        elif self.name == "TWITTER":
            adapter = XAdapter(api_url=self.url, client_id="c", options=options)
        else:
            adapter = LinkedInAdapter(
                api_url=self.url,
                oauth_url=self.url,
                client_id="c",
                client_secret="s",  # noqa: S106
                options=options,
            )
        self.adapters.append(adapter)
        return adapter

    def account(self, access: str = "good-access") -> AccountCredentials:
        external = {"BLUESKY": "did:plc:hopcast", "TWITTER": MediaX.user_id, "LINKEDIN": "urn:li:organization:2414183"}
        return AccountCredentials(
            social_account_id=self.account_id,
            platform=self.name,
            handle="@hopcast",
            external_account_id=external.get(self.name),
            api_base_url=self.url if self.name in ("BLUESKY", "MASTODON") else None,
            access_token=access,
            refresh_token="good-refresh",  # noqa: S106
            organization_id=ORG,
        )

    def request(self, *media: PostMedia, text: str | None = None) -> PostRequest:
        return PostRequest(
            f"key-{uuid.uuid4()}", text or f"A post {uuid.uuid4().hex[:6]}", datetime.now(UTC), media=media
        )

    @property
    def uploads_made(self) -> int:
        assert isinstance(self.fake, UploadFaults)
        return self.fake.uploads


FAKES: dict[str, Callable[[], FakePlatform]] = {
    "BLUESKY": MediaBluesky,
    "MASTODON": lambda: MediaMastodon(processing_polls=2),
    "TWITTER": MediaX,
    "LINKEDIN": lambda: MediaLinkedIn(processing_polls=1),
}


@pytest.fixture(params=sorted(FAKES))
async def setup(request: pytest.FixtureRequest, media_host: Any) -> AsyncIterator[Setup]:
    fake = FAKES[request.param]()
    async with serve(fake) as url:
        made = Setup(request.param, fake, url, MemoryMediaUploads(), media_host.url)
        made.host = media_host  # type: ignore[attr-defined]
        yield made
        for adapter in made.adapters:
            await adapter.close()


async def _nothing(account: AccountCredentials, tokens: RefreshedTokens) -> None:
    return None


async def publish(adapter: HttpPlatformAdapter, account: AccountCredentials, request: PostRequest) -> Published:
    return await adapter.publish(account, request, resumed=False, on_refreshed=_nothing)


def two_images(setup: Setup) -> tuple[PostMedia, PostMedia]:
    host = setup.host  # type: ignore[attr-defined]
    first = host.put("/cup.png", image_bytes(640, 480, seed=1))
    second = host.put("/beans.jpg", image_bytes(300, 600, kind="JPEG", seed=2), content_type="image/jpeg")
    return PostMedia(first, "A cup of coffee", "image/png"), PostMedia(second, "Roasted beans", "image/jpeg")


def posted_media(setup: Setup) -> list[tuple[str, str | None]]:
    """What the fake's one post carries: each media's reference and alt text, in order."""
    post = setup.fake.posts[-1]
    fake = setup.fake
    if isinstance(fake, MediaBluesky):
        images = post["record"]["embed"]["images"]
        return [(i["image"]["ref"]["$link"], i["alt"]) for i in images]
    if isinstance(fake, MediaMastodon):
        return [(m["id"], m["description"]) for m in post["media_attachments"]]
    if isinstance(fake, MediaX):
        return [(i, fake.media[i].get("alt_text")) for i in post["media_ids"]]
    content = post["content"]
    images = [content["media"]] if "media" in content else content["multiImage"]["images"]
    return [(i["id"], i.get("altText")) for i in images]


async def test_two_images_go_up_once_each_and_the_post_carries_them_with_alt_texts(setup: Setup) -> None:
    media = two_images(setup)
    published = await publish(setup.adapter(), setup.account(), setup.request(*media))
    assert published.external_id
    assert setup.uploads_made == 2 and len(setup.fake.posts) == 1
    carried = posted_media(setup)
    assert [alt for _, alt in carried] == ["A cup of coffee", "Roasted beans"]
    assert len({ref for ref, _ in carried}) == 2
    if isinstance(setup.fake, MediaBluesky):
        ratios = [i["aspectRatio"] for i in setup.fake.posts[-1]["record"]["embed"]["images"]]
        assert ratios == [{"width": 640, "height": 480}, {"width": 300, "height": 600}]
        assert [setup.fake.blobs[ref][1] for ref, _ in carried] == ["image/png", "image/jpeg"]
    if isinstance(setup.fake, MediaMastodon):
        polls = [c for c in setup.fake.calls if c[0] == "GET" and c[1].startswith("/api/v1/media/")]
        assert len(polls) == 2 * 3  # 202, then 206 twice and 200 for each file


async def test_a_lost_answer_to_the_post_after_the_uploads_gives_one_post_and_one_upload_each(setup: Setup) -> None:
    media = two_images(setup)
    setup.fake.fail_next(Fault(delay_s=TIMEOUT_S * 3, create=True))  # posted, the answer lost
    # (LinkedIn's account is an organization's, whose posts can be listed after a lost answer.)
    await publish(setup.adapter(), setup.account(), setup.request(*media))
    assert len(setup.fake.posts) == 1
    assert setup.uploads_made == 2


async def test_uploads_are_reused_after_a_post_that_was_never_made_and_by_another_process(setup: Setup) -> None:
    media = two_images(setup)
    request = setup.request(*media)
    setup.fake.fail_next(*[Fault(status=503)] * 4)  # the uploads went up; the post never did
    with pytest.raises(PublishFailure) as failure:
        await publish(setup.adapter(), setup.account(), request)
    assert failure.value.reason is PublishFailureReason.RETRIES_EXHAUSTED
    assert setup.uploads_made == 2 and setup.fake.posts == []
    # The process died; another publishes the same post with the uploads it remembers.
    await publish(setup.adapter(), setup.account(), request)
    assert setup.uploads_made == 2 and len(setup.fake.posts) == 1
    assert [alt for _, alt in posted_media(setup)] == ["A cup of coffee", "Roasted beans"]


async def test_an_upload_refused_by_the_platform_fails_media_rejected(setup: Setup) -> None:
    media = two_images(setup)
    assert isinstance(setup.fake, UploadFaults)
    setup.fake.fail_upload(Fault(status=400, body={"error": "InvalidMimeType", "code": "BAD_MEDIA"}))
    with pytest.raises(PublishFailure) as failure:
        await publish(setup.adapter(), setup.account(), setup.request(*media))
    assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert "answered 400" in failure.value.detail and "to an upload" in failure.value.detail
    assert setup.fake.posts == []


async def test_too_many_files_fail_before_anything_is_fetched_or_uploaded(setup: Setup) -> None:
    host = setup.host  # type: ignore[attr-defined]
    most = {"BLUESKY": 4, "MASTODON": 4 + 1, "TWITTER": 4 + 1, "LINKEDIN": 20}[setup.name]
    files = [PostMedia(host.put(f"/{i}.png", image_bytes(10, 10, seed=i)), f"image {i}") for i in range(most + 1)]
    with pytest.raises(PublishFailure) as failure:
        await publish(setup.adapter(), setup.account(), setup.request(*files))
    assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert failure.value.detail.startswith(f"{most + 1} files, over {setup.name}")
    assert host.server.hits == {} and setup.uploads_made == 0 and setup.fake.posts == []


async def test_bluesky_takes_a_file_of_exactly_its_limit_and_refuses_one_byte_more(media_host: Any) -> None:
    fake = MediaBluesky()
    async with serve(fake) as url:
        setup = Setup("BLUESKY", fake, url, MemoryMediaUploads(), media_host.url)
        at = media_host.put("/at.png", image_bytes(1200, 800, pad_to=1_000_000))
        over = media_host.put("/over.png", image_bytes(1200, 800, pad_to=1_000_001, seed=5))
        adapter = setup.adapter()
        with pytest.raises(PublishFailure) as failure:
            await publish(adapter, setup.account(), setup.request(PostMedia(at, "ok"), PostMedia(over, "too big")))
        assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
        assert failure.value.detail == "media 2 of 2: more than 1,000,000 bytes, over the limit of 1,000,000"
        assert fake.uploads == 0 and fake.posts == []
        await publish(adapter, setup.account(), setup.request(PostMedia(at, "ok")))
        assert fake.uploads == 1 and len(fake.posts) == 1
        await adapter.close()


async def test_bluesky_reuses_an_accounts_blob_in_its_next_post_and_survives_a_lost_upload_answer(
    media_host: Any,
) -> None:
    fake = MediaBluesky()
    async with serve(fake) as url:
        setup = Setup("BLUESKY", fake, url, MemoryMediaUploads(), media_host.url)
        photo = PostMedia(media_host.put("/p.png", image_bytes(50, 40)), "a photo")
        fake.fail_upload(Fault(delay_s=TIMEOUT_S * 3))  # the blob is stored; its answer lost
        adapter = setup.adapter()
        await publish(adapter, setup.account(access="expired-access"), setup.request(photo))
        await publish(adapter, setup.account(), setup.request(photo))
        upload_calls = [c for c in fake.calls if c[1] == "/xrpc/com.atproto.repo.uploadBlob"]
        # The first answer lost and asked again after a token refresh: one blob, two posts on it.
        assert fake.uploads == 1 and len(fake.blobs) == 1 and len(fake.posts) == 2
        assert len(upload_calls) == 3  # expired token, lost answer, success; none for post two
        await adapter.close()


async def test_mastodon_checks_the_instances_own_media_limits(media_host: Any) -> None:
    fake = MediaMastodon(media_attachments={"supported_mime_types": ["image/png"], "image_size_limit": 20_000})
    async with serve(fake) as url:
        setup = Setup("MASTODON", fake, url, MemoryMediaUploads(), media_host.url)
        at = PostMedia(media_host.put("/at.png", image_bytes(64, 64, pad_to=20_000)), "fits")
        over = PostMedia(media_host.put("/over.png", image_bytes(64, 64, pad_to=20_001, seed=1)), "over")
        jpeg = PostMedia(media_host.put("/j.jpg", image_bytes(64, 64, kind="JPEG"), "image/jpeg"), "jpeg")
        adapter = setup.adapter()
        for media, why in ((over, "20,001 bytes, over the limit of 20,000"), (jpeg, "type image/jpeg is not taken")):
            with pytest.raises(PublishFailure) as failure:
                await publish(adapter, setup.account(), setup.request(media))
            assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
            assert why in failure.value.detail and "on MASTODON on 127.0.0.1" in failure.value.detail
        assert fake.uploads == 0
        await publish(adapter, setup.account(), setup.request(at))
        assert fake.uploads == 1 and len(fake.posts) == 1
        await adapter.close()


async def test_x_uploads_a_video_in_chunks_and_waits_for_its_processing(media_host: Any) -> None:
    fake = MediaX(processing_polls=2)
    async with serve(fake) as url:
        setup = Setup("TWITTER", fake, url, MemoryMediaUploads(), media_host.url)
        clip = PostMedia(media_host.put("/clip.mp4", MP4, "video/mp4"), "A pour-over, slowly")
        adapter = setup.adapter()
        await publish(adapter, setup.account(), setup.request(clip))
        (media,) = fake.media.values()
        assert media["category"] == "tweet_video" and media["data"] == MP4 and media["state"] == "succeeded"
        assert media["alt_text"] == "A pour-over, slowly"
        statuses = [c for c in fake.calls if c == ("GET", "/2/media/upload")]
        assert len(statuses) == 3
        assert fake.posts[-1]["media_ids"] == [media["id"]]
        await adapter.close()


async def test_linkedin_posts_one_image_as_media_and_several_as_multi_image(media_host: Any) -> None:
    fake = MediaLinkedIn()
    async with serve(fake) as url:
        setup = Setup("LINKEDIN", fake, url, MemoryMediaUploads(), media_host.url)
        first, second = two_images(_with_host(setup, media_host))
        adapter = setup.adapter()
        await publish(adapter, setup.account(), setup.request(first))
        assert set(fake.posts[-1]["content"]) == {"media"}
        await publish(adapter, setup.account(), setup.request(first, second))
        images = fake.posts[-1]["content"]["multiImage"]["images"]
        assert [i.get("altText") for i in images] == ["A cup of coffee", "Roasted beans"]
        assert fake.uploads == 2  # the first image's upload reused by the second post
        await adapter.close()


def _with_host(setup: Setup, host: Any) -> Setup:
    setup.host = host  # type: ignore[attr-defined]
    return setup


async def test_a_resumed_post_that_exists_is_found_before_its_media_are_fetched(setup: Setup) -> None:
    media = two_images(setup)
    request = setup.request(*media)
    adapter = setup.adapter()
    await publish(adapter, setup.account(), request)
    host = setup.host  # type: ignore[attr-defined]
    host.server.files.clear()  # the files are gone since: a fetch would fail the post
    hits = dict(host.server.hits)
    if setup.name == "MASTODON":
        # Its question is the create call itself, media and all: with the files gone it cannot
        # ask, so the outcome is unknown rather than a failure of a post that is out.
        with pytest.raises(PublishFailure) as failure:
            await adapter.publish(setup.account(), request, resumed=True, on_refreshed=_nothing)
        assert failure.value.reason is PublishFailureReason.OUTCOME_UNKNOWN
        assert "may have published it" in failure.value.detail
    else:
        found = await adapter.publish(setup.account(), request, resumed=True, on_refreshed=_nothing)
        assert found.external_id and host.server.hits == hits
    assert len(setup.fake.posts) == 1
