"""Small JSON read endpoints beside FastStream's exact-path routes: `/organizations/{id}/credits`.

FastStream's ASGI app matches exact paths only; services also need templated read-only
routes, so this dispatcher matches `{name}` segments and hands everything else on.

Every JSON route is authenticated and tenant-scoped here, not in the route: a request without
a valid bearer token is 401 before the handler runs, and a 200 is sent only when the handler
said whose data it is (`JsonResponse.organization`) and the token names that organization;
otherwise it is the same 404 as an object that does not exist, so a caller learns nothing of
other organizations. `/health`, `/ready` and `/metrics` are FastStream's and stay open.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from hopcast_shared.auth import KeysUnavailable, TokenVerifier, Unauthorized

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def path_id(path: dict[str, str], what: str) -> uuid.UUID:
    """The route's `{id}` as a UUID; else ValueError, which the router answers with a 400
    saying "<what> id must be a UUID"."""
    try:
        return uuid.UUID(path["id"])
    except ValueError:
        raise ValueError(f"{what} id must be a UUID") from None


@dataclass(frozen=True)
class JsonResponse:
    """What a handler answers; a 200 names the organization whose data `body` is."""

    status: int
    body: Any
    organization: uuid.UUID | None = None


NOT_FOUND = JsonResponse(404, {"error": "not found"})


# A handler gets the path parameters and the query parameters (first value of each).
JsonHandler = Callable[[dict[str, str], dict[str, str]], Awaitable[JsonResponse]]


@dataclass(frozen=True)
class JsonRoute:
    template: str
    handler: JsonHandler

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}$")


class JsonRouter:
    """Serve authenticated GET requests on templated paths; pass any other request to `fallback`."""

    def __init__(self, routes: Sequence[JsonRoute], fallback: ASGIApp, *, verifier: TokenVerifier) -> None:
        self._routes = [(route.pattern(), route.handler) for route in routes]
        self._fallback = fallback
        self._verifier = verifier

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for pattern, handler in self._routes:
                match = pattern.match(scope["path"])
                if match is None:
                    continue
                if scope["method"] not in ("GET", "HEAD"):
                    await _send(send, JsonResponse(405, {"error": "method not allowed"}))
                    return
                try:
                    caller = await self._verifier.authenticate(_authorization(scope))
                except Unauthorized as exc:
                    log.info("HTTP %s refused: %s", scope["path"], exc)
                    await _send(send, _unauthorized(exc), _challenge(exc))
                    return
                except KeysUnavailable as exc:
                    log.warning("HTTP %s: the token keys are unavailable: %s", scope["path"], exc)
                    await _send(send, JsonResponse(503, {"error": "token keys unavailable, try again"}))
                    return
                query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
                try:
                    response = await handler(match.groupdict(), query)
                except ValueError as exc:
                    response = JsonResponse(400, {"error": str(exc)})
                if response.status == 404 or (response.status < 300 and not caller.may_read(response.organization)):
                    if response.status < 300 and response.organization is None:
                        log.error("HTTP %s answered without naming its organization: refused", scope["path"])
                    response = NOT_FOUND
                await _send(send, response)
                return
        await self._fallback(scope, receive, send)


def _authorization(scope: dict[str, Any]) -> str | None:
    values = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
    if len(values) != 1:
        return None if not values else ""
    return bytes(values[0]).decode("latin-1")


def _unauthorized(exc: Unauthorized) -> JsonResponse:
    if exc.error is None:
        return JsonResponse(401, {"error": "a bearer token is required"})
    return JsonResponse(401, {"error": "the bearer token is not valid"})


def _challenge(exc: Unauthorized) -> list[tuple[bytes, bytes]]:
    """RFC 6750: a challenge naming the scheme, with the error code once a token was sent."""
    value = 'Bearer realm="hopcast"' + (f', error="{exc.error}"' if exc.error else "")
    return [(b"www-authenticate", value.encode())]


async def _send(send: Any, response: JsonResponse, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(response.body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
