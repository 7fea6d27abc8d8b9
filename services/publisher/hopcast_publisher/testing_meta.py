"""Fake Meta platforms for tests and local trials (`testing.py` has the others and the common
part): Graph API paths with the version in front, Graph errors (`{"error": {"code",
"error_subcode", "message"}}`: 190 for a refused token, 2635 for a retired version), the
container lifecycle of Instagram and Threads (IN_PROGRESS for `in_progress_polls` reads, then
FINISHED, or ERROR/EXPIRED as `container_outcome` says; PUBLISHED once published), their
publishing caps, and Facebook's Page feed, photos and videos. `answer_headers` go on every
answer (X-App-Usage, X-Business-Use-Case-Usage...). Faults (`fail_next`) meet the publish calls.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from hopcast_publisher.adapters.platforms.base import PostMedia
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.testing import Answer, FakePlatform, Request
from hopcast_shared.text_rules import rule_for


def graph_error(code: int, message: str, subcode: int | None = None, status: int = 400) -> Answer:
    error: dict[str, Any] = {"code": code, "message": message, "type": "OAuthException", "fbtrace_id": "Afake"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {}, {"error": error}


def graph_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class FakeGraph(FakePlatform):
    """The Graph API's common part: versions, tokens, usage headers."""

    version = "v27.0"
    retired_versions: frozenset[str] = frozenset({"v19.0"})

    def __init__(self) -> None:
        super().__init__()
        self.answer_headers: dict[str, str] = {}

    def expired(self) -> Answer:
        return graph_error(190, "Error validating access token: Session has expired", 463)

    def token_problem(self, request: Request) -> Answer | None:
        if request.bearer in self.access_tokens:
            return None
        if request.bearer in self.expired_tokens:
            return self.expired()
        return graph_error(190, "Invalid OAuth access token - Cannot parse access token")

    async def route(self, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        if parts == ["refresh_access_token"]:
            status, headers, body = self.refreshed(request)
        elif parts[0] in self.retired_versions:
            status, headers, body = graph_error(
                2635, f"(#2635) You are calling a deprecated version of the API ({parts[0]})"
            )
        elif parts[0] != self.version or len(parts) < 2:
            status, headers, body = graph_error(803, "Unknown path", status=404)
        else:
            status, headers, body = await self.graph(request, parts[1:])
        return status, {**self.answer_headers, **headers}, body

    async def graph(self, request: Request, path: list[str]) -> Answer:
        raise NotImplementedError

    grant: ClassVar[str] = ""

    def refreshed(self, request: Request) -> Answer:
        if not self.grant or request.query.get("grant_type") != self.grant:
            return graph_error(100, "Unsupported grant_type")
        if request.bearer not in self.access_tokens:
            return graph_error(190, "Invalid OAuth access token")
        fresh = f"{request.bearer}-renewed"
        self.access_tokens.add(fresh)
        return 200, {}, {"access_token": fresh, "token_type": "bearer", "expires_in": 5_183_944}


class FakeContainers(FakeGraph):
    """Instagram's and Threads' publishing: containers, their status, publish, the user's
    posts, the publishing cap."""

    user_id = "17841400000000001"
    media_edge: ClassVar[str] = ""
    publish_edge: ClassVar[str] = ""
    status_field: ClassVar[str] = ""
    text_field: ClassVar[str] = ""
    max_children: ClassVar[int] = 10
    cap_edge: ClassVar[str] = ""
    quota_total: ClassVar[int] = 100
    web: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, dict[str, Any]] = {}
        self.in_progress_polls = 0
        """How many status reads of a new container answer IN_PROGRESS before its outcome."""
        self.container_outcome = "FINISHED"
        self.quota_usage = 0

    @property
    def create_route(self) -> tuple[str, str]:  # type: ignore[override]
        return ("POST", f"/{self.version}/{self.user_id}/{self.publish_edge}")

    def containers_made(self) -> int:
        return len(self.containers)

    async def graph(self, request: Request, path: list[str]) -> Answer:
        problem = self.token_problem(request)
        if problem is not None:
            return problem
        if path == [self.user_id, self.media_edge] and request.method == "POST":
            return self.make_container(request.form())
        if path == [self.user_id, self.publish_edge] and request.method == "POST":
            return await self.handle_create(request)
        if path == [self.user_id, self.media_edge]:
            since = int(request.query.get("since", "0"))
            mine = [p for p in reversed(self.posts) if p["made"] >= since]
            shown = [{k: v for k, v in p.items() if k != "made"} for p in mine]
            return 200, {}, {"data": shown[: int(request.query.get("limit", "25"))]}
        if path == [self.user_id, self.cap_edge]:
            config = {"quota_total": self.quota_total, "quota_duration": 86400}
            return 200, {}, {"data": [{"quota_usage": self.quota_usage, "config": config}]}
        if len(path) == 1 and path[0] in self.containers:
            return self.container_status(path[0])
        if len(path) == 1 and (post := next((p for p in self.posts if p["id"] == path[0]), None)):
            return 200, {}, {"id": post["id"], "permalink": post["permalink"]}
        return graph_error(100, "Unsupported request", status=400)

    def check_text(self, text: str) -> Answer | None:
        return None

    def make_container(self, form: dict[str, str]) -> Answer:
        if form.get("media_type") == "CAROUSEL":
            children = [c for c in form.get("children", "").split(",") if c]
            if not 2 <= len(children) <= self.max_children or any(c not in self.containers for c in children):
                return graph_error(100, f"A carousel holds 2 to {self.max_children} items", 2207024)
        elif not (form.get("image_url") or form.get("video_url") or form.get("media_type") == "TEXT"):
            return graph_error(100, "The parameter image_url is required", 2207003)
        problem = self.check_text(form.get(self.text_field, ""))
        if problem is not None:
            return problem
        cid = self.next_id()
        self.containers[cid] = {"form": form, "reads": 0, "state": "IN_PROGRESS"}
        return 200, {}, {"id": cid}

    def container_status(self, cid: str) -> Answer:
        container = self.containers[cid]
        container["reads"] += 1
        if container["state"] == "IN_PROGRESS" and container["reads"] > self.in_progress_polls:
            container["state"] = self.container_outcome
        body: dict[str, Any] = {"id": cid, self.status_field: container["state"]}
        if container["state"] == "ERROR":
            body["error_message" if self.status_field == "status" else "status"] = "ERROR: 2207052"
        return 200, {}, body

    async def create(self, request: Request) -> Answer:
        cid = request.form().get("creation_id", "")
        container = self.containers.get(cid)
        if container is None or container["state"] not in ("FINISHED", "PUBLISHED"):
            return graph_error(9007, "Media ID is not available", 2207027)
        if container["state"] == "PUBLISHED":
            return graph_error(9007, "The media has been published already", 2207006)
        if self.quota_usage >= self.quota_total:
            return graph_error(9, "Application request limit reached", 2207042, status=403)
        container["state"] = "PUBLISHED"
        self.quota_usage += 1
        mid = self.next_id()
        form = container["form"]
        self.posts.append(
            {
                "id": mid,
                self.text_field: form.get(self.text_field, ""),
                "permalink": f"{self.web}/p/{mid}",
                "timestamp": graph_time(),
                "made": int(datetime.now(UTC).timestamp()),
                "container": cid,
            }
        )
        return 200, {}, {"id": mid}


class FakeInstagram(FakeContainers):
    name = "instagram"
    media_edge = "media"
    publish_edge = "media_publish"
    status_field = "status_code"
    text_field = "caption"
    cap_edge = "content_publishing_limit"
    quota_total = 100
    grant = "ig_refresh_token"
    web = "https://www.instagram.com"

    def check_text(self, text: str) -> Answer | None:
        problems = rule_for("INSTAGRAM").problems(text) if text else ()
        return graph_error(100, "The caption is too long", 2207010) if problems else None


class FakeThreads(FakeContainers):
    name = "threads"
    version = "v1.0"
    retired_versions = frozenset({"v0.9"})
    media_edge = "threads"
    publish_edge = "threads_publish"
    status_field = "status"
    text_field = "text"
    max_children = 20
    cap_edge = "threads_publishing_limit"
    quota_total = 250
    grant = "th_refresh_token"
    web = "https://www.threads.net/@hopcast/post"

    def check_text(self, text: str) -> Answer | None:
        problems = rule_for("THREADS").problems(text) if text else ()
        return graph_error(100, "Param text must be at most 500 characters long.") if problems else None


class FakeFacebook(FakeGraph):
    """A Page: POST feed (message, attached_media), photos (published or not), videos; GET
    published_posts."""

    name = "facebook"
    page_id = "102030405060708"

    def __init__(self) -> None:
        super().__init__()
        self.photos: dict[str, dict[str, str]] = {}

    @property
    def create_route(self) -> tuple[str, str]:  # type: ignore[override]
        return ("POST", f"/{self.version}/{self.page_id}/feed")

    async def graph(self, request: Request, path: list[str]) -> Answer:
        problem = self.token_problem(request)
        if problem is not None:
            return problem
        if path[:1] != [self.page_id] or len(path) != 2:
            return graph_error(100, "Unsupported request", status=400)
        edge = path[1]
        if request.method == "POST" and edge == "photos" and request.form().get("published") == "false":
            pid = self.next_id()
            self.photos[pid] = request.form()
            return 200, {}, {"id": pid}
        if request.method == "POST" and edge in ("feed", "photos", "videos"):
            return await self.handle_create(request)
        if edge == "published_posts":
            since = int(request.query.get("since", "0"))
            mine = [p for p in reversed(self.posts) if p["made"] >= since]
            return 200, {}, {"data": [{k: v for k, v in p.items() if k not in ("made", "form")} for p in mine]}
        return graph_error(100, "Unsupported request", status=400)

    async def create(self, request: Request) -> Answer:
        form = request.form()
        edge = request.path.rsplit("/", 1)[-1]
        attached = [json.loads(v)["media_fbid"] for k, v in sorted(form.items()) if k.startswith("attached_media")]
        if any(a not in self.photos for a in attached):
            return graph_error(100, "Invalid attached media")
        post_id = f"{self.page_id}_{self.next_id()}"
        message = form.get("message") or form.get("caption") or form.get("description") or ""
        self.posts.append(
            {
                "id": post_id,
                "message": message,
                "permalink_url": f"https://www.facebook.com/{post_id}",
                "created_time": graph_time(),
                "made": int(datetime.now(UTC).timestamp()),
                "form": {**form, "edge": edge, "attached": attached},
            }
        )
        if edge == "photos":
            return 200, {}, {"id": self.next_id(), "post_id": post_id}
        return 200, {}, {"id": post_id}


# --- media for the tests: hosts that resolve to a public address, or to a private one ---------

_MEDIA_HOSTS = {"cdn.example": ["93.184.215.14"], "mixed.example": ["93.184.215.14", "10.0.0.7"]}


async def media_resolver(host: str, port: int) -> list[str]:
    """`cdn.example` is public, `mixed.example` has a private address too, loopback is itself;
    any other name does not resolve."""
    if host in _MEDIA_HOSTS:
        return _MEDIA_HOSTS[host]
    if host in ("127.0.0.1", "localhost"):
        return ["127.0.0.1"]
    raise OSError(f"{host} does not resolve")


MEDIA_EGRESS = EgressPolicy(allow_loopback=True, resolver=media_resolver)
"""The fakes on loopback, and media hosts judged by `media_resolver`."""


def image(n: int, alt: str | None = "A flat white on a wooden table", mime: str = "image/jpeg") -> PostMedia:
    return PostMedia(f"https://cdn.example/img/{n}.jpg", alt, mime)


def video(n: int) -> PostMedia:
    return PostMedia(f"https://cdn.example/clip/{n}.mp4", None, "video/mp4")
