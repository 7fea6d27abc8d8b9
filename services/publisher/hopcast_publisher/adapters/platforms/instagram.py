"""Instagram: content publishing through the Graph API (developers.facebook.com/docs/instagram-
platform/content-publishing): a media container (`POST /{ig-user-id}/media` with `image_url` and
`alt_text`, or `video_url` as REELS, and the caption), polled (`GET /{container-id}?fields=
status_code`) until FINISHED, then `POST /{ig-user-id}/media_publish` with its `creation_id`. A
carousel (2 to 10 files) is one item container per file (`is_carousel_item=true`), then a
CAROUSEL container naming them (`children`). Instagram posts nothing without an image or a video,
and takes only JPEG images.

Caps: 100 API-published posts per 24 hours (the `content_publishing_limit` edge; a carousel
counts one), read before a container is made. Exactly once: the container's status, then the
account's latest media by caption (`GET /{ig-user-id}/media`). Tokens: long-lived (60 days),
refreshed with `GET /refresh_access_token?grant_type=ig_refresh_token` (Instagram Login's host,
graph.instagram.com, the default).
"""

from __future__ import annotations

import httpx

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostMedia, PostRequest, Published
from hopcast_publisher.adapters.platforms.graph import GraphAdapter, is_video
from hopcast_publisher.adapters.platforms.http import LookupFailed, json_or_empty, now

MAX_CAROUSEL = 10


class InstagramAdapter(GraphAdapter):
    platform = "INSTAGRAM"
    max_media = MAX_CAROUSEL
    needs_media = True
    status_field = "status_code"
    cap_edge = "content_publishing_limit"
    refresh_grant = "ig_refresh_token"
    refreshes_access_token = True

    def _media_refusal(self, media: PostMedia, count: int) -> str | None:
        mime = (media.mime_type or "").lower()
        if mime.startswith("image/") and mime not in ("image/jpeg", "image/jpg"):
            return f"Instagram takes JPEG images only, not {mime}"
        return super()._media_refusal(media, count)

    def _item(self, media: PostMedia, *, in_carousel: bool) -> dict[str, str]:
        if is_video(media):
            return {"media_type": "VIDEO" if in_carousel else "REELS", "video_url": media.url}
        form = {"image_url": media.url}
        if media.alt_text:
            form["alt_text"] = media.alt_text
        return form

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        media = await self._judged_media(request)
        owner = self._owner(account)
        if self._kept(request, "container") is None and (refused := await self._check_cap(account)) is not None:
            return refused
        if len(media) == 1:
            form = {**self._item(media[0], in_carousel=False), "caption": request.text}
        else:
            items = [self._item(item, in_carousel=True) for item in media]
            children = await self._carousel(account, request, f"{owner}/media", items)
            if isinstance(children, httpx.Response):
                return children
            form = {"media_type": "CAROUSEL", "children": children, "caption": request.text}
        response = await self._publish_container(account, request, f"{owner}/media", form, f"{owner}/media_publish")
        media_id = json_or_empty(response).get("id")
        if 200 <= response.status_code < 300 and isinstance(media_id, str):
            await self._keep_permalink(account, request, media_id)
        return response

    async def _keep_permalink(self, account: AccountCredentials, request: PostRequest, media_id: str) -> None:
        """The post's permalink (the media id is not its URL), kept for `_created`; the
        profile's URL stands in when it cannot be read."""
        try:
            response = await self._get(account, media_id, {"fields": "permalink"})
        except httpx.HTTPError:
            return
        link = json_or_empty(response).get("permalink")
        if response.status_code == 200 and isinstance(link, str):
            self._keep(request, "permalink", link)

    def _profile(self, account: AccountCredentials) -> str:
        return f"https://www.instagram.com/{account.handle.lstrip('@')}/"

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        media_id = json_or_empty(response).get("id")
        if not isinstance(media_id, str) or not media_id:
            raise LookupFailed(self.platform, response, ": the answer had no media id", maybe_created=True)
        return Published(media_id, self._kept(request, "permalink") or self._profile(account), now())

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        published = await self._container_published(account, request)
        if published is False:
            return None  # its container is not published: nothing was posted
        response = await self._get(
            account, f"{self._owner(account)}/media", {"fields": "id,caption,permalink,timestamp", "limit": 25}
        )
        post = self._match(request, response, "caption", "timestamp")
        if post is not None:
            return Published(str(post["id"]), str(post.get("permalink") or self._profile(account)), now())
        if published:
            raise LookupFailed(self.platform, None, ": its container is published, its media not listed yet")
        return None
