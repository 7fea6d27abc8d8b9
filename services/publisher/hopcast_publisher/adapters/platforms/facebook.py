"""Facebook Pages through the Graph API (developers.facebook.com/docs/pages-api/posts), with the
Page's access token and the Page id as the account's external id:

- text (its links previewed by Facebook): `POST /{page-id}/feed` with `message`;
- one photo: `POST /{page-id}/photos` with `url`, `caption` and `alt_text_custom` (the answer's
  `post_id` is the post);
- several photos: each `POST /{page-id}/photos` with `published=false` (kept for the post's
  retries), then `POST /{page-id}/feed` with the message and `attached_media[i]={"media_fbid"}`;
- one video: `POST /{page-id}/videos` with `file_url` and `description`.

Facebook fetches each file from its URL. Exactly once: the Page's latest published posts by
message (`GET /{page-id}/published_posts?since=`). Rate limits: X-Page-Usage, X-App-Usage and
X-Business-Use-Case-Usage (`rate_limits.py`). Tokens: a Page token made from a long-lived user
token does not expire, so none is refreshed; a refused one needs the Page connected again.
"""

from __future__ import annotations

import json

import httpx

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostMedia, PostRequest, Published
from hopcast_publisher.adapters.platforms.graph import GraphAdapter, is_video
from hopcast_publisher.adapters.platforms.http import LookupFailed, json_or_empty, now

MAX_PHOTOS = 10
"""Hopcast's bound on the photos of one Page post (as Instagram's carousel)."""


class FacebookAdapter(GraphAdapter):
    platform = "FACEBOOK"
    max_media = MAX_PHOTOS

    def _media_refusal(self, media: PostMedia, count: int) -> str | None:
        if is_video(media) and count > 1:
            return "a Page post holds one video alone, not with other media"
        return super()._media_refusal(media, count)

    @staticmethod
    def _photo(media: PostMedia) -> dict[str, str]:
        form = {"url": media.url}
        if media.alt_text:
            form["alt_text_custom"] = media.alt_text
        return form

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        media = await self._judged_media(request)
        page = self._owner(account)
        if not media:
            return await self._post(account, f"{page}/feed", {"message": request.text})
        if len(media) == 1 and is_video(media[0]):
            return await self._post(account, f"{page}/videos", {"file_url": media[0].url, "description": request.text})
        if len(media) == 1:
            return await self._post(account, f"{page}/photos", {**self._photo(media[0]), "caption": request.text})
        form = {"message": request.text}
        for number, item in enumerate(media):
            photo = await self._step(
                account, request, f"photo{number}", f"{page}/photos", {**self._photo(item), "published": "false"}
            )
            if isinstance(photo, httpx.Response):
                return photo
            form[f"attached_media[{number}]"] = json.dumps({"media_fbid": photo})
        return await self._post(account, f"{page}/feed", form)

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        body = json_or_empty(response)
        post_id = body.get("post_id") or body.get("id")
        if not isinstance(post_id, str) or not post_id:
            raise LookupFailed(self.platform, response, ": the answer had no post id", maybe_created=True)
        return Published(post_id, f"https://www.facebook.com/{post_id}", now())

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        response = await self._get(
            account,
            f"{self._owner(account)}/published_posts",
            {"fields": "id,message,permalink_url,created_time", "since": self._since(request), "limit": 25},
        )
        post = self._match(request, response, "message", "created_time")
        if post is None:
            return None
        post_id = str(post["id"])
        return Published(post_id, str(post.get("permalink_url") or f"https://www.facebook.com/{post_id}"), now())
