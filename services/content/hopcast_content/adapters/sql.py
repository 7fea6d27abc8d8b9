"""What content's repositories share: the connection of the transaction they work in, whose
an id is (an event naming another organization's id is refused, never taken as unknown), and
rows passed as arrays to `unnest`.

Every statement is scoped by organization where the data is tenant data.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from hopcast_shared.db import Conn

# The ids events name, and where content keeps whose each is.
OWNED: dict[str, tuple[str, str]] = {
    "brand": ("brands", "id"),
    "schedule": ("schedules", "id"),
    "material": ("materials", "id"),
    "run": ("runs", "run_id"),
    "pending post": ("pending_posts", "id"),
    "post": ("posts", "post_id"),
}


def columns(rows: Collection[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as columns, to pass as arrays to unnest (`width` empty columns for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


def first_of_another(named: Sequence[tuple[str, int]], org_param: int) -> str:
    """An SQL expression: the first kind of `named` (kind, the parameter holding its id)
    whose id another organization than `$org_param` has, else null."""
    checks = [
        f"(SELECT '{kind}' FROM {OWNED[kind][0]} WHERE {OWNED[kind][1]} = ${param} AND organization_id <> ${org_param})"
        for kind, param in named
    ]
    return f"coalesce({', '.join(checks)})"


class Repository:
    """A repository over one transaction's connection (the consumer's, for a handler)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def owned_by_another(self, kind: str, row_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        """Whether another organization than `org_id` has this brand, schedule, material, run,
        pending post or post: an event naming it is refused, not ignored as if it were unknown."""
        return await self.conn.fetchval(f"SELECT {first_of_another([(kind, 1)], 2)}", row_id, org_id) is not None
