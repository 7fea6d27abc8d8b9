"""Threads (developers.facebook.com/docs/threads/posts): a container (`POST /{threads-user-id}/
threads` with `media_type` TEXT, IMAGE or VIDEO, the `text`, `image_url`/`video_url` and
`alt_text`), then `POST /{threads-user-id}/threads_publish` with its `creation_id`. A carousel
(2 to 20 files) is one item container per file (`is_carousel_item=true`), then a CAROUSEL
container naming them (`children`). A container's state is its `status` (FINISHED, IN_PROGRESS,
ERROR with an `error_message`, EXPIRED, PUBLISHED; docs/threads/troubleshooting). Text: 500
characters, an emoji counted by its UTF-8 bytes (`hopcast_shared.text_rules.threads`).

Host graph.threads.net, its own version (v1.0). Caps: 250 API-published posts per 24 hours
(`threads_publishing_limit`), read before a container is made. Exactly once: the container's
status, then the account's latest threads by text (`GET /{threads-user-id}/threads`). Tokens:
long-lived (60 days), refreshed with `GET /refresh_access_token?grant_type=th_refresh_token`.
"""

from __future__ import annotations

import httpx

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostMedia, PostRequest, Published
from hopcast_publisher.adapters.platforms.graph import GraphAdapter, is_video
from hopcast_publisher.adapters.platforms.http import LookupFailed, json_or_empty, now

MAX_CAROUSEL = 20


class ThreadsAdapter(GraphAdapter):
    platform = "THREADS"
    version_setting = "PUBLISHER_THREADS_API_VERSION"
    max_media = MAX_CAROUSEL
    status_field = "status"
    cap_edge = "threads_publishing_limit"
    refresh_grant = "th_refresh_token"
    refreshes_access_token = True

    def _item(self, media: PostMedia) -> dict[str, str]:
        form = (
            {"media_type": "VIDEO", "video_url": media.url}
            if is_video(media)
            else {
                "media_type": "IMAGE",
                "image_url": media.url,
            }
        )
        if media.alt_text:
            form["alt_text"] = media.alt_text
        return form

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        media = await self._judged_media(request)
        owner = self._owner(account)
        if self._kept(request, "container") is None and (refused := await self._check_cap(account)) is not None:
            return refused
        if not media:
            form = {"media_type": "TEXT", "text": request.text}
        elif len(media) == 1:
            form = {**self._item(media[0]), "text": request.text}
        else:
            children = await self._carousel(account, request, f"{owner}/threads", [self._item(m) for m in media])
            if isinstance(children, httpx.Response):
                return children
            form = {"media_type": "CAROUSEL", "children": children, "text": request.text}
        response = await self._publish_container(account, request, f"{owner}/threads", form, f"{owner}/threads_publish")
        thread_id = json_or_empty(response).get("id")
        if 200 <= response.status_code < 300 and isinstance(thread_id, str):
            try:
                answer = await self._get(account, thread_id, {"fields": "permalink"})
                link = json_or_empty(answer).get("permalink")
                if answer.status_code == 200 and isinstance(link, str):
                    self._keep(request, "permalink", link)
            except httpx.HTTPError:
                pass  # the profile's URL stands in
        return response

    def _profile(self, account: AccountCredentials) -> str:
        return f"https://www.threads.net/@{account.handle.lstrip('@')}"

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        thread_id = json_or_empty(response).get("id")
        if not isinstance(thread_id, str) or not thread_id:
            raise LookupFailed(self.platform, response, ": the answer had no thread id", maybe_created=True)
        return Published(thread_id, self._kept(request, "permalink") or self._profile(account), now())

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        published = await self._container_published(account, request)
        if published is False:
            return None
        response = await self._get(
            account,
            f"{self._owner(account)}/threads",
            {"fields": "id,text,permalink,timestamp", "since": self._since(request), "limit": 25},
        )
        post = self._match(request, response, "text", "timestamp")
        if post is not None:
            return Published(str(post["id"]), str(post.get("permalink") or self._profile(account)), now())
        if published:
            raise LookupFailed(self.platform, None, ": its container is published, its thread not listed yet")
        return None
