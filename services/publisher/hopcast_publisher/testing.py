"""Fake platform servers for tests and local trials: small ASGI apps that answer like
Bluesky, Mastodon, X and LinkedIn document (paths, status codes, rate-limit headers,
expired tokens), served by uvicorn on 127.0.0.1 only.

They live on loopback, which the egress guard refuses unless told otherwise: adapters
pointed at them take `LOOPBACK_EGRESS`, the explicit setting of tests and local trials.

Each fake keeps the posts it accepted (`posts`), the tokens it accepts, and a queue of
faults the next create calls meet (`fail_next`): an HTTP status with headers, or a
timeout that happens before or after the post is created, the case where a client cannot
know whether it was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_shared.text_rules.entities import extract_urls
from hopcast_shared.text_rules.mastodon import MastodonRule

LOOPBACK_EGRESS = EgressPolicy(allow_loopback=True)
"""Platform calls may reach 127.0.0.0/8 and ::1 (and plain http there): the fakes below."""


@dataclass
class Fault:
    """What the next create call meets: `status` (with `headers`), or a `delay_s` before the
    answer, with the post created first (`create=True`) or not."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay_s: float = 0.0
    create: bool = False


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None


Answer = tuple[int, dict[str, str], Any]


class FakePlatform:
    """The common part: routing, tokens, faults and the record of calls."""

    name = "fake"

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.access_tokens: set[str] = {"good-access"}
        self.expired_tokens: set[str] = {"expired-access"}
        self.refresh_tokens: dict[str, str] = {"good-refresh": "fresh-access"}
        self.faults: list[Fault] = []
        self.create_delay_s = 0.0
        """Every create call takes this long before it is handled (a slow platform)."""
        self._ids = itertools.count(110_000_000_000_000_001)

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def creates(self) -> int:
        return sum(1 for method, path in self.calls if (method, path) == self.create_route)

    create_route: tuple[str, str] = ("POST", "/")

    def next_id(self) -> str:
        return str(next(self._ids))

    def token_problem(self, request: Request) -> Answer | None:
        token = request.bearer
        if token in self.access_tokens:
            return None
        if token in self.expired_tokens:
            return self.expired()
        return 401, {}, {"error": "unauthorized"}

    def expired(self) -> Answer:
        return 401, {}, {"error": "The access token expired"}

    async def route(self, request: Request) -> Answer:
        raise NotImplementedError

    async def create(self, request: Request) -> Answer:
        raise NotImplementedError

    async def handle_create(self, request: Request) -> Answer:
        problem = self.token_problem(request)
        if problem is not None:
            return problem
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        fault = self.faults.pop(0) if self.faults else None
        if fault is None:
            return await self.create(request)
        if fault.delay_s:
            answer = await self.create(request) if fault.create else None
            await asyncio.sleep(fault.delay_s)
            return answer or (504, {}, {"error": "gateway timeout"})
        assert fault.status is not None
        return fault.status, fault.headers, fault.body if fault.body is not None else {"error": f"fault {fault.status}"}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Request(
            scope["method"],
            scope["path"],
            {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()},
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body,
        )
        self.calls.append((request.method, request.path))
        status, headers, payload = await self.route(request)
        raw = b"" if payload is None else json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")]
                + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": raw})


def _not_found() -> Answer:
    return 404, {}, {"error": "not found"}


class FakeBluesky(FakePlatform):
    """A PDS: createRecord with a client-chosen rkey (refused when it exists), getRecord,
    refreshSession; an expired access token is a 400 ExpiredToken, as the PDS answers."""

    name = "bluesky"
    create_route = ("POST", "/xrpc/com.atproto.repo.createRecord")
    handles: dict[str, str] = {"alice.test": "did:plc:alice"}
    """The handles com.atproto.identity.resolveHandle resolves, to their DIDs."""

    def expired(self) -> Answer:
        return 400, {}, {"error": "ExpiredToken", "message": "Token has expired"}

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == self.create_route:
            return await self.handle_create(request)
        if request.path == "/xrpc/com.atproto.identity.resolveHandle":
            did = self.handles.get(request.query.get("handle", ""))
            return (200, {}, {"did": did}) if did else (400, {}, {"error": "HandleNotFound"})
        if request.path == "/xrpc/com.atproto.repo.getRecord":
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            for post in self.posts:
                if post["rkey"] == request.query.get("rkey") and post["repo"] == request.query.get("repo"):
                    return 200, {}, {"uri": post["uri"], "cid": post["cid"], "value": post["record"]}
            return 400, {}, {"error": "RecordNotFound", "message": "Could not locate record"}
        if request.path == "/xrpc/com.atproto.server.refreshSession":
            new_access = self.refresh_tokens.pop(request.bearer or "", None)
            if new_access is None:
                return 400, {}, {"error": "ExpiredToken", "message": "Token has been revoked"}
            self.access_tokens.add(new_access)
            self.refresh_tokens[f"refresh-after-{new_access}"] = f"{new_access}-2"
            return 200, {}, {"accessJwt": new_access, "refreshJwt": f"refresh-after-{new_access}", "did": "did:plc:x"}
        return _not_found()

    async def create(self, request: Request) -> Answer:
        body = request.json()
        text = body.get("record", {}).get("text", "")
        if len(text) > 300:
            return 400, {}, {"error": "InvalidRequest", "message": "Record/text must not be longer than 300 graphemes"}
        rkey = body.get("rkey") or self.next_id()
        if any(p["rkey"] == rkey and p["repo"] == body["repo"] for p in self.posts):
            return 400, {}, {"error": "InvalidRequest", "message": "Record already exists"}
        uri = f"at://{body['repo']}/{body['collection']}/{rkey}"
        post = {"repo": body["repo"], "rkey": rkey, "uri": uri, "cid": f"bafy{rkey}", "record": body["record"]}
        self.posts.append(post)
        reset = str(int(time.time()) + 3600)
        return (
            200,
            {"ratelimit-limit": "5000", "ratelimit-remaining": "4999", "ratelimit-reset": reset},
            {
                "uri": uri,
                "cid": post["cid"],
            },
        )


class FakeMastodon(FakePlatform):
    """An instance: POST /api/v1/statuses honouring Idempotency-Key (the same key returns the
    same status), 422 on a status over its limit (counted as Mastodon counts), GET
    /api/v2/instance with that limit, /oauth/token for refreshes."""

    name = "mastodon"
    create_route = ("POST", "/api/v1/statuses")

    def __init__(self, max_characters: int = 500, characters_reserved_per_url: int = 23) -> None:
        super().__init__()
        self._by_key: dict[str, dict[str, Any]] = {}
        self.max_characters = max_characters
        self.characters_reserved_per_url = characters_reserved_per_url

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == self.create_route:
            return await self.handle_create(request)
        if (request.method, request.path) == ("GET", "/api/v2/instance"):
            statuses = {
                "max_characters": self.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": self.characters_reserved_per_url,
            }
            return 200, {}, {"domain": "mastodon.example", "configuration": {"statuses": statuses}}
        if request.path == "/oauth/token":
            form = request.form()
            new_access = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if new_access is None or not form.get("client_id"):
                return 400, {}, {"error": "invalid_grant"}
            self.access_tokens.add(new_access)
            return 200, {}, {"access_token": new_access, "token_type": "Bearer", "expires_in": 7200}
        return _not_found()

    async def create(self, request: Request) -> Answer:
        key = request.headers.get("idempotency-key")
        if key and key in self._by_key:
            return 200, {}, self._by_key[key]
        status_text = request.json().get("status", "")
        if not status_text or not MastodonRule(self.max_characters, self.characters_reserved_per_url).fits(status_text):
            return 422, {}, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}
        sid = self.next_id()
        status = {
            "id": sid,
            "url": f"https://mastodon.example/@hopcast/{sid}",
            "uri": f"https://mastodon.example/users/hopcast/statuses/{sid}",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "content": f"<p>{status_text}</p>",
        }
        self.posts.append(status)
        if key:
            self._by_key[key] = status
        reset = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        return 200, {"x-ratelimit-limit": "300", "x-ratelimit-remaining": "299", "x-ratelimit-reset": reset}, status


def x_rendered(text: str, slugs: itertools.count[int]) -> tuple[str, list[dict[str, Any]]]:
    """A text as X gives it back, and its URL entities: every URL (as twitter-text finds them)
    wrapped as a t.co link, then & < > HTML-escaped, as X's API returns a post's text."""
    parts, urls, at = [], [], 0
    for url in extract_urls(text):
        original = text[url.start : url.end]
        tco = f"https://t.co/{next(slugs):010x}"
        parts += [text[at : url.start], tco]
        expanded = original if url.has_protocol else f"http://{original}"
        urls.append({"url": tco, "expanded_url": expanded, "display_url": original.split("://")[-1]})
        at = url.end
    parts.append(text[at:])
    escaped = "".join(parts).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped, urls


class FakeX(FakePlatform):
    """X API v2: POST /2/tweets (201; 403 for a duplicate text), GET /2/users/{id}/tweets (the
    text as X returns it: URLs wrapped as t.co links, & < > escaped; `entities` and
    `start_time` honoured), GET /2/users/me, POST /2/oauth2/token."""

    name = "x"
    create_route = ("POST", "/2/tweets")
    user_id = "2244994945"

    def __init__(self) -> None:
        super().__init__()
        self._slugs = itertools.count(0x5EED000000)

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == self.create_route:
            return await self.handle_create(request)
        if request.path == "/2/users/me":
            problem = self.token_problem(request)
            return problem or (200, {}, {"data": {"id": self.user_id, "username": "hopcast"}})
        if request.path == f"/2/users/{self.user_id}/tweets":
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            since = request.query.get("start_time")
            fields = request.query.get("tweet.fields", "").split(",")
            latest = [
                {"id": p["id"], "text": p["text"], "created_at": p["created_at"]}
                | ({"entities": {"urls": p["urls"]}} if "entities" in fields and p["urls"] else {})
                for p in reversed(self.posts)
                if since is None or datetime.fromisoformat(p["created_at"]) >= datetime.fromisoformat(since)
            ]
            return 200, {}, {"data": latest[: int(request.query.get("max_results", "10"))], "meta": {}}
        if request.path == "/2/oauth2/token":
            form = request.form()
            new_access = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if new_access is None:
                return (
                    400,
                    {},
                    {"error": "invalid_request", "error_description": "Value passed for the token was invalid."},
                )
            self.access_tokens.add(new_access)
            return 200, {}, {"access_token": new_access, "refresh_token": f"r-{new_access}", "expires_in": 7200}
        return _not_found()

    async def create(self, request: Request) -> Answer:
        text = request.json().get("text", "")
        if any(p["sent"] == text for p in self.posts):
            return (
                403,
                {},
                {
                    "detail": "You are not allowed to create a Tweet with duplicate content.",
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                },
            )
        rendered, urls = x_rendered(text, self._slugs)
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        tweet = {"id": self.next_id(), "text": rendered, "sent": text, "urls": urls, "created_at": created_at}
        self.posts.append(tweet)
        reset = str(int(time.time()) + 900)
        return (
            201,
            {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "99", "x-rate-limit-reset": reset},
            {"data": {"id": tweet["id"], "text": rendered, "edit_history_tweet_ids": [tweet["id"]]}},
        )


class FakeLinkedIn(FakePlatform):
    """LinkedIn Posts API: POST /rest/posts (201, id in x-restli-id; LinkedIn-Version
    required), GET /rest/posts?q=author, POST /oauth/v2/accessToken. Listing a member's posts
    needs r_member_social, which only the tokens in `member_readers` carry (none by default, as
    for a personal account with w_member_social): others get LinkedIn's 403. An organization's
    posts are listed (r_organization_social comes with posting as it)."""

    name = "linkedin"
    create_route = ("POST", "/rest/posts")
    retired_versions: frozenset[str] = frozenset({"202506"})
    """Versions answered 426 NONEXISTENT_VERSION, as LinkedIn answers a sunset one."""

    def __init__(self) -> None:
        super().__init__()
        self.member_readers: set[str] = set()

    async def route(self, request: Request) -> Answer:
        version = request.headers.get("linkedin-version")
        if request.path == "/rest/posts" and version is None:
            return 400, {}, {"status": 400, "code": "VERSION_MISSING", "message": "A version must be present"}
        if request.path == "/rest/posts" and version in self.retired_versions:
            return (
                426,
                {},
                {"status": 426, "code": "NONEXISTENT_VERSION", "message": f"Requested version {version} is not active"},
            )
        if (request.method, request.path) == self.create_route:
            return await self.handle_create(request)
        if request.method == "GET" and request.path == "/rest/posts" and request.query.get("q") == "author":
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            author = request.query.get("author", "")
            if author.startswith("urn:li:person:") and request.bearer not in self.member_readers:
                return (
                    403,
                    {},
                    {
                        "status": 403,
                        "serviceErrorCode": 100,
                        "code": "ACCESS_DENIED",
                        "message": "Not enough permissions to access: partnerApiPostsExternal.FINDER-author",
                    },
                )
            mine = [p for p in reversed(self.posts) if p["author"] == author]
            return 200, {}, {"elements": mine[: int(request.query.get("count", "10"))], "paging": {}}
        if request.path == "/oauth/v2/accessToken":
            form = request.form()
            new_access = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if new_access is None or not form.get("client_secret"):
                return 400, {}, {"error": "invalid_grant"}
            self.access_tokens.add(new_access)
            return 200, {}, {"access_token": new_access, "expires_in": 5184000, "refresh_token": f"r-{new_access}"}
        return _not_found()

    async def create(self, request: Request) -> Answer:
        body = request.json()
        if not str(body.get("author", "")).startswith("urn:li:"):
            return 422, {}, {"message": "/author: invalid URN", "status": 422}
        urn = f"urn:li:share:{self.next_id()}"
        self.posts.append({"id": urn, "author": body["author"], "commentary": body.get("commentary", "")})
        return 201, {"x-restli-id": urn}, None


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
