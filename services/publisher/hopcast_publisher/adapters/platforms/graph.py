"""What the Meta adapters (Facebook Pages, Instagram, Threads) share: Graph API calls with the
version in the path, Graph errors read as the retry loop needs them, media URLs judged before
Meta is asked to fetch them, and containers made once per post and polled until ready.

- Errors (developers.facebook.com/docs/graph-api/guides/error-handling): `{"error": {"code",
  "error_subcode", "message", "type"}}`. Code 190 (or 102) is a token Meta no longer takes
  (expired, revoked, password changed); throttling is 4, 17, 32, 613, 80001-80014 (business use
  case) answered 400/403, and Instagram's publishing cap is code 9 subcode 2207042; 2635 is a
  retired version (`versions.py`).
- Rate limits: `X-App-Usage`, `X-Page-Usage`, `X-Business-Use-Case-Usage` (`rate_limits.py`),
  and the publishing caps of Instagram (`content_publishing_limit`) and Threads
  (`threads_publishing_limit`), read before a container is made: a used-up cap defers the
  post (DAILY_CAP) rather than failing it.
- Media: Meta fetches each file from its URL itself, so the URL is judged by the egress
  guard's own policy first (https, no credentials, every address it resolves to public):
  one it refuses fails EGRESS_REFUSED and nothing is sent; a type the platform does not take,
  or too many files, fail MEDIA_REJECTED.
- Exactly once: a container is made once per post (its id kept for the post's retries), and
  before any retry after an unknown outcome the adapter asks whether the post exists: the
  container's own status (PUBLISHED or not) when it has one, then the account's latest posts
  by their text, as the X adapter does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostMedia,
    PostRequest,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.adapters.platforms.egress import EgressRefused
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    HttpPlatformAdapter,
    LookupFailed,
    bearer,
    items,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.rate_limits import (
    PublishDeferred,
    RateLimit,
    graph_rate_limit,
    latest,
)
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth
from hopcast_publisher.adapters.platforms.versions import graph_version_retired
from hopcast_shared.contract import DeferralReason, PublishFailureReason, ReauthReason

TOKEN_REFUSED_CODES = frozenset({102, 190})
THROTTLED_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
PUBLISHING_CAP = (9, 2207042)  # Instagram: "maximum number of posts ... published by Content Publishing API"
PUBLISHING_CAP_RECHECK = timedelta(hours=1)
"""A cap is a rolling 24 hours and Meta does not say when a slot frees up: look again an hour on."""
LOOKUP_MARGIN = timedelta(minutes=5)
_KEPT_STEPS = 4096
_VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v")


def graph_error(response: httpx.Response) -> dict[str, object]:
    error = json_or_empty(response).get("error")
    return error if isinstance(error, dict) else {}


def _code(error: Mapping[str, object], name: str = "code") -> int | None:
    value = error.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_video(media: PostMedia) -> bool:
    """A video by its type, or, without one, by its URL's extension."""
    if media.mime_type:
        return media.mime_type.lower().startswith("video/")
    return httpx.URL(media.url).path.lower().endswith(_VIDEO_EXTENSIONS)


def same_caption(sent: str, theirs: object) -> bool:
    """Whether a post's text on the platform is the text we sent (NFC, whitespace collapsed)."""
    if not isinstance(theirs, str):
        return False
    return " ".join(unicodedata.normalize("NFC", sent).split()) == " ".join(
        unicodedata.normalize("NFC", theirs).split()
    )


def parse_graph_time(value: object) -> datetime | None:
    """`2026-12-06T23:41:00+0000` (Graph's form) or RFC 3339."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class GraphAdapter(HttpPlatformAdapter):
    """A Meta platform over the Graph API. Subclasses make the post (`_create`), find it
    (`_find_existing`) and say their media rules (`max_media`, `_media_refusal`)."""

    version_setting = "PUBLISHER_GRAPH_API_VERSION"
    max_media: ClassVar[int] = 10
    needs_media: ClassVar[bool] = False
    status_field: ClassVar[str] = "status_code"
    """The field a container's state is in (Instagram `status_code`, Threads `status`)."""
    cap_edge: ClassVar[str] = ""
    """The account's publishing-cap edge (`content_publishing_limit`), if the platform has one."""

    def __init__(
        self,
        *,
        api_url: str,
        version: str,
        options: AdapterOptions | None = None,
        poll_interval_s: float = 2.0,
        poll_budget_s: float | None = None,
    ) -> None:
        options = options or AdapterOptions()
        super().__init__(options)
        self._api = api_url.rstrip("/")
        self.api_version = version
        self._egress = options.egress
        self.poll_interval_s = poll_interval_s
        # A container is polled within one create call, which the lease covers: half of it,
        # leaving the rest for the calls around the polls.
        self.poll_budget_s = poll_budget_s if poll_budget_s is not None else self.call_s / 2
        self._steps: dict[str, str] = {}

    # --- calls ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self._api}/{self.api_version}/{path.lstrip('/')}"

    async def _post(self, account: AccountCredentials, path: str, form: Mapping[str, str]) -> httpx.Response:
        return await self.client.post(self._url(path), headers=bearer(account.access_token), data=dict(form))

    async def _get(self, account: AccountCredentials, path: str, params: Mapping[str, str | int]) -> httpx.Response:
        return await self.client.get(self._url(path), headers=bearer(account.access_token), params=dict(params))

    def _owner(self, account: AccountCredentials) -> str:
        owner = account.external_account_id
        if not owner:
            raise PublishFailure(
                PublishFailureReason.PLATFORM_REJECTED,
                f"{self.platform} account without its Meta id (external_account_id)",
            )
        return owner

    # --- steps made once per post -----------------------------------------------------------

    def _kept(self, request: PostRequest, step: str) -> str | None:
        return self._steps.get(f"{request.idempotency_key}/{step}")

    def _keep(self, request: PostRequest, step: str, value: str) -> None:
        if len(self._steps) >= _KEPT_STEPS:
            self._steps.pop(next(iter(self._steps)))
        self._steps[f"{request.idempotency_key}/{step}"] = value

    async def _step(
        self, account: AccountCredentials, request: PostRequest, step: str, path: str, form: Mapping[str, str]
    ) -> str | httpx.Response:
        """The id made by `step` of this post: kept from an earlier try, or made now. The answer
        itself when it is not a 2xx with an id, for the retry loop to read."""
        kept = self._kept(request, step)
        if kept is not None:
            return kept
        response = await self._post(account, path, form)
        made = json_or_empty(response).get("id")
        if not 200 <= response.status_code < 300 or not isinstance(made, str | int) or not str(made):
            return response
        self._keep(request, step, str(made))
        return str(made)

    async def _carousel(
        self, account: AccountCredentials, request: PostRequest, path: str, items: Sequence[Mapping[str, str]]
    ) -> str | httpx.Response:
        """The comma-separated ids of a carousel's item containers, each made once per post
        (`_step`), in order; the answer itself when one is not made."""
        children = []
        for number, item in enumerate(items):
            child = await self._step(account, request, f"item{number}", path, {**item, "is_carousel_item": "true"})
            if isinstance(child, httpx.Response):
                return child
            children.append(child)
        return ",".join(children)

    async def _publish_container(
        self, account: AccountCredentials, request: PostRequest, path: str, form: Mapping[str, str], publish: str
    ) -> httpx.Response:
        """The post's container (made once), waited for until FINISHED, then published."""
        container = await self._step(account, request, "container", path, form)
        if isinstance(container, httpx.Response):
            return container
        await self._until_finished(account, container)
        return await self._post(account, publish, {"creation_id": container})

    async def _container_state(self, account: AccountCredentials, container_id: str) -> tuple[str, str]:
        """A container's state (FINISHED, IN_PROGRESS, ERROR, EXPIRED, PUBLISHED) and why."""
        fields = f"{self.status_field},status,error_message"
        response = await self._get(account, container_id, {"fields": fields})
        if response.status_code != 200:
            raise LookupFailed(self.platform, response, ": could not read the container's status")
        body = json_or_empty(response)
        state = str(body.get(self.status_field) or "")
        why = body.get("error_message") or (body.get("status") if self.status_field != "status" else "")
        return state, str(why or "")

    async def _until_finished(self, account: AccountCredentials, container_id: str) -> None:
        """Poll the container until FINISHED, within `poll_budget_s`; ERROR and EXPIRED fail, a
        PUBLISHED one is looked up, one still IN_PROGRESS is tried again later."""
        give_up = time.monotonic() + self.poll_budget_s
        while True:
            state, why = await self._container_state(account, container_id)
            if state == "FINISHED":
                return
            if state == "PUBLISHED":
                raise LookupFailed(self.platform, None, ": its container is published already", maybe_created=True)
            if state == "ERROR":
                detail = f"{self.platform} could not process the media (container ERROR" + (f": {why}" if why else "")
                raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, detail[:200] + ")")
            if state == "EXPIRED":
                raise PublishFailure(
                    PublishFailureReason.PLATFORM_REJECTED,
                    f"{self.platform} container EXPIRED: not published within 24 hours of its making",
                )
            if time.monotonic() + self.poll_interval_s > give_up:
                raise LookupFailed(self.platform, None, f": the container is still {state or 'not ready'}")
            await asyncio.sleep(self.poll_interval_s)

    async def _container_published(self, account: AccountCredentials, request: PostRequest) -> bool | None:
        """Whether this post's container (if one was made) says it is published; None without one."""
        container = self._kept(request, "container")
        if container is None:
            return None
        state, _ = await self._container_state(account, container)
        return state == "PUBLISHED"

    async def _check_cap(self, account: AccountCredentials) -> httpx.Response | None:
        """Defer the post (DAILY_CAP) when the account's publishing cap is used up. The answer
        itself when it refuses the version, the token or for a limit, for the retry loop to read;
        a cap that cannot be read otherwise is not a reason to hold the post (publishing says)."""
        if not self.cap_edge:
            return None
        response = await self._get(account, f"{self._owner(account)}/{self.cap_edge}", {"fields": "quota_usage,config"})
        if self._version_retired(response) or self._token_expired(response) or self._throttled(response):
            return response
        data = items(json_or_empty(response).get("data"))
        usage = data[0] if response.status_code == 200 and data and isinstance(data[0], dict) else {}
        config = usage.get("config")
        used, total = usage.get("quota_usage"), config.get("quota_total") if isinstance(config, dict) else None
        if isinstance(used, int) and isinstance(total, int) and total > 0 and used >= total:
            limit = RateLimit(now() + PUBLISHING_CAP_RECHECK, DeferralReason.DAILY_CAP)
            self.limiter.block(account.social_account_id, limit)
            detail = f"{self.platform}: the account published {used} of its {total} posts a day through the API"
            raise PublishDeferred(limit.reset_at, limit.reason, detail, maybe_sent=False)
        return None

    # --- media ----------------------------------------------------------------------------

    async def _judged_media(self, request: PostRequest) -> tuple[PostMedia, ...]:
        """The post's media, once each URL passed the egress policy and the platform's rules."""
        media = request.media
        if self.needs_media and not media:
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, f"{self.platform} needs an image or a video")
        if len(media) > self.max_media:
            raise PublishFailure(
                PublishFailureReason.MEDIA_REJECTED,
                f"{self.platform} takes at most {self.max_media} media in a post, not {len(media)}",
            )
        for number, item in enumerate(media, 1):
            await self._judge_url(number, item.url)
            refusal = self._media_refusal(item, len(media))
            if refusal is not None:
                raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, f"{self.platform}: media {number}: {refusal}")
        return media

    def _media_refusal(self, media: PostMedia, count: int) -> str | None:
        """Why the platform does not take this file in a post of `count` files, or None."""
        mime = (media.mime_type or "").lower()
        if mime and not mime.startswith(("image/", "video/")):
            return f"type {mime} is neither an image nor a video"
        return None

    async def _judge_url(self, number: int, url: str) -> None:
        """The egress guard's judgement of a URL Meta will fetch: https (or loopback http when
        the policy allows it), no credentials, every address it resolves to public."""
        policy = self._egress
        try:
            parsed = httpx.URL(url)
            policy.check_url(parsed, frozenset())
            host = parsed.host
            try:
                found = [str(ipaddress.ip_address(host))]
            except ValueError:
                found = list(await policy.resolver(host, parsed.port or 443))
            for text in found:
                why = policy.why_refused(ipaddress.ip_address(text.split("%", 1)[0]))
                if why is not None:
                    raise EgressRefused(host, f"resolves to {why}")
        except EgressRefused as exc:
            raise PublishFailure(
                PublishFailureReason.EGRESS_REFUSED, f"{self.platform}: media {number}: {exc.detail}"
            ) from None
        except (httpx.InvalidURL, ValueError):
            detail = f"{self.platform}: media {number}: egress refused: not a valid URL"
            raise PublishFailure(PublishFailureReason.EGRESS_REFUSED, detail) from None
        except OSError:
            detail = f"{self.platform}: media {number}: its host does not resolve"
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, detail) from None

    # --- finding a post by its text ---------------------------------------------------------

    def _since(self, request: PostRequest) -> int:
        return int((request.created_at - LOOKUP_MARGIN).timestamp())

    def _match(
        self, request: PostRequest, response: httpx.Response, text_field: str, time_field: str
    ) -> dict[str, object] | None:
        """The listed post with our text made since publishing started, if any."""
        if response.status_code != 200:
            raise LookupFailed(self.platform, response)
        since = request.created_at - LOOKUP_MARGIN
        for post in items(json_or_empty(response).get("data")):
            if not isinstance(post, dict) or not post.get("id"):
                continue
            made = parse_graph_time(post.get(time_field))
            if made is not None and made < since:
                continue
            if same_caption(request.text, post.get(text_field)):
                return post
        return None

    # --- answers ----------------------------------------------------------------------------

    def _error_code(self, body: dict[str, object]) -> object:
        error = body.get("error")
        if not isinstance(error, dict):
            return None
        parts = [str(v) for v in (_code(error), _code(error, "error_subcode")) if v is not None]
        return " ".join(parts) or None

    def _token_expired(self, response: httpx.Response) -> bool:
        return response.status_code == 401 or _code(graph_error(response)) in TOKEN_REFUSED_CODES

    def _throttled(self, response: httpx.Response) -> bool:
        error = graph_error(response)
        code = _code(error)
        return (
            response.status_code == 429
            or code in THROTTLED_CODES
            or (code, _code(error, "error_subcode")) == PUBLISHING_CAP
        )

    def _rate_limit(self, response: httpx.Response) -> RateLimit | None:
        error = graph_error(response)
        capped = (_code(error), _code(error, "error_subcode")) == PUBLISHING_CAP
        cap = RateLimit(now() + PUBLISHING_CAP_RECHECK, DeferralReason.DAILY_CAP) if capped else None
        return latest(graph_rate_limit(response.headers, now(), self.policy.unannounced_limit_s), cap)

    def _version_retired(self, response: httpx.Response) -> bool:
        return graph_version_retired(response.status_code, json_or_empty(response))

    # --- tokens -----------------------------------------------------------------------------

    refresh_grant: ClassVar[str] = ""
    """The grant that exchanges a long-lived token for a new one (`ig_refresh_token`)."""

    async def refresh(self, account: AccountCredentials) -> RefreshedTokens:
        """A long-lived token exchanged for a new one at `refresh_access_token` (the platform
        takes a token that is at least a day old and still valid); a Graph 190 there means the
        token is gone for good."""
        if not self.refresh_grant:
            raise PublishFailure(
                PublishFailureReason.TOKEN_INVALID,
                f"{self.platform} tokens are not refreshed: connect the account again for a new one",
            )
        try:
            response = await self.client.get(
                f"{self._api}/refresh_access_token",
                headers=bearer(account.access_token),
                params={"grant_type": self.refresh_grant},
            )
        except httpx.HTTPError as exc:
            detail = f"{self.platform}: token refresh failed ({type(exc).__name__})"
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, detail) from None
        body = json_or_empty(response)
        access = body.get("access_token")
        if response.status_code != 200 or not isinstance(access, str):
            detail = f"{self.platform} refused to refresh the token ({response.status_code})"
            if _code(graph_error(response)) in TOKEN_REFUSED_CODES:
                raise NeedsReauth(ReauthReason.REFRESH_REJECTED, detail)
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, detail)
        expires_in = body.get("expires_in")
        expires_at = now() + timedelta(seconds=int(expires_in)) if isinstance(expires_in, int | float) else None
        return RefreshedTokens(access, account.refresh_token, expires_at)

    async def _refresh(self, account: AccountCredentials) -> RefreshedTokens:
        return await self.refresh(account)
