"""An organization's overview (the seed's `getOrgDashboard`) as a dashboard assembles it: one
GET of `/organizations/{id}/overview` on each of the four services, with the reader's token.

Each service answers for what it owns (docs/dashboard.md): scheduler the schedules, content
the brands and ready materials, billing the credits, publisher the posts of the last 30 days.
`assemble` puts the four answers together; `poll_overviews` keeps a Board's organizations'
overviews fresh for the live view of `make run`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hopcast_shared.auth import issue_dev_token

OVERVIEW_PATH = "/organizations/{id}/overview"
PARTS = ("scheduler", "content", "billing", "publisher")

# (service, path) -> (HTTP status, parsed body)
Get = Callable[[str, str], Awaitable[tuple[int, Any]]]


class OverviewUnavailable(Exception):
    """A service did not answer its part with a 200 (named, with its status)."""


@dataclass(frozen=True)
class OrganizationOverview:
    organization_id: str
    active_brands: int
    ready_materials: int
    active_schedules: int
    posts_last_30_days: int
    credits_remaining: int
    period_credits: int
    topup_credits: int
    period_end: str | None
    schedules_by_status: dict[str, int] = field(default_factory=dict)
    posts_by_platform: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def assemble(organization_id: str, parts: dict[str, dict[str, Any]]) -> OrganizationOverview:
    """The overview from the four services' answers (by service name)."""
    scheduler, content, billing, publisher = (parts[name] for name in PARTS)
    return OrganizationOverview(
        organization_id=organization_id,
        active_brands=int(content["active_brands"]),
        ready_materials=int(content["ready_materials"]),
        active_schedules=int(scheduler["active_schedules"]),
        posts_last_30_days=int(publisher["posts"]),
        credits_remaining=int(billing["credits_remaining"]),
        period_credits=int(billing["period_credits"]),
        topup_credits=int(billing["topup_credits"]),
        period_end=billing["period_end"],
        schedules_by_status=dict(scheduler["schedules_by_status"]),
        posts_by_platform=dict(publisher["posts_by_platform"]),
    )


async def read_overview(get: Get, organization_id: str) -> OrganizationOverview:
    """Ask the four services at once; raises OverviewUnavailable if one does not answer 200."""
    path = OVERVIEW_PATH.replace("{id}", organization_id)
    answers = await asyncio.gather(*(get(name, path) for name in PARTS))
    parts: dict[str, dict[str, Any]] = {}
    for name, (status, body) in zip(PARTS, answers, strict=True):
        if status != 200:
            raise OverviewUnavailable(f"{name} answered {status} for {path}")
        parts[name] = body
    return assemble(organization_id, parts)


def local_get(ports: dict[str, int], token: str) -> Get:
    """A Get on the local services (127.0.0.1, these ports) with a bearer token."""

    def fetch(url: str) -> tuple[int, Any]:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (http://127.0.0.1)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    async def get(service: str, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(fetch, f"http://127.0.0.1:{ports[service]}{path}")

    return get


async def poll_overviews(
    organizations: Callable[[], Iterable[str]],
    store: dict[str, OrganizationOverview],
    ports: dict[str, int],
    *,
    key_folder: Path | None = None,
    every_s: float = 3.0,
) -> None:
    """Forever: read the overview of each organization the view knows, with a development token
    for them (as a dashboard's reader would hold one), into `store`. A part that does not answer
    leaves the last overview shown."""
    while True:
        orgs = sorted(o for o in set(organizations()) if _is_uuid(o))
        if orgs:
            get = local_get(ports, issue_dev_token(orgs, ttl_s=300, folder=key_folder))
            for org in orgs:
                try:
                    store[org] = await read_overview(get, org)
                except (OverviewUnavailable, KeyError, TypeError, ValueError):
                    continue
        await asyncio.sleep(every_s)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
