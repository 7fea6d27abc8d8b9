"""Small JSON read endpoints beside FastStream's exact-path routes: `/organizations/{id}/credits`.

FastStream's ASGI app matches exact paths only; services also need templated read-only
routes, so this dispatcher matches `{name}` segments and hands everything else on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class JsonResponse:
    status: int
    body: Any


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
    """Serve GET requests on templated paths; pass any other request to `fallback`."""

    def __init__(self, routes: Sequence[JsonRoute], fallback: ASGIApp) -> None:
        self._routes = [(route.pattern(), route.handler) for route in routes]
        self._fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for pattern, handler in self._routes:
                match = pattern.match(scope["path"])
                if match is None:
                    continue
                if scope["method"] not in ("GET", "HEAD"):
                    await _send(send, JsonResponse(405, {"error": "method not allowed"}))
                    return
                query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
                try:
                    response = await handler(match.groupdict(), query)
                except ValueError as exc:
                    response = JsonResponse(400, {"error": str(exc)})
                await _send(send, response)
                return
        await self._fallback(scope, receive, send)


async def _send(send: Any, response: JsonResponse) -> None:
    body = json.dumps(response.body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
