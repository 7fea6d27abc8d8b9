"""PostgreSQL access: migrations at start, then an asyncpg pool with the pgvector and JSON codecs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pgvector.asyncpg import register_vector

from hopcast_shared.migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    kernel_migrations,
    missing_migrations,
    tenant_migrations,
)

log = logging.getLogger(__name__)

# Failures of the infrastructure (the database or the network), not of the data being handled:
# whoever meets one retries later rather than blaming the event or the post in hand.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether a failure is the infrastructure's (retry without end) rather than the data's.

    Besides the connection failures above, a serialization failure or a deadlock (a concurrent
    transaction won) is retried, whatever the data. asyncpg's "invalid input for query
    argument" is an InterfaceError too, but also a ValueError: the data's fault, not the
    connection's.
    """
    if isinstance(exc, asyncpg.TransactionRollbackError):
        return True
    return isinstance(exc, INFRASTRUCTURE_ERRORS) and not isinstance(exc, ValueError)


# What handlers and repositories take: a plain connection or one borrowed from the pool.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """How a pooled connection is reset when released: asyncpg has already rolled back a transaction
    left open; the server's session is kept as it is. Pooled connections change no session state
    (settings are SET LOCAL, advisory locks transaction-scoped, LISTEN on a connection of its own),
    so asyncpg's default reset (`UNLISTEN *; RESET ALL; ...`) would be a round trip to the database
    on every release for nothing: one per transaction (3% of the scheduler's samples at 50 runs/s).
    A connection that ever needs session state takes one of its own (`asyncpg.connect`), as the
    outbox relay's LISTEN does."""


def all_migrations(service: list[Migration] | None) -> list[Migration]:
    """A service's database's migrations in the order they apply: the kernel's, the service's,
    the tenant projection's."""
    return kernel_migrations() + list(service or []) + tenant_migrations()


async def migrate_database(url: str, migrations: list[Migration]) -> list[Migration]:
    """Apply what `url`'s database lacks of `migrations` (as its role: the schema's owner)."""
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn, migrations)
    finally:
        await conn.close()


async def wait_for_schema(url: str, migrations: list[Migration], *, within_s: float, interval_s: float = 2.0) -> None:
    """Wait until the database has every one of `migrations` (applied by `hopcast migrate
    apply`); raise MigrationError naming the first missing one after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        conn = await asyncpg.connect(url)
        try:
            missing = await missing_migrations(conn, migrations)
        finally:
            await conn.close()
        if not missing:
            return
        if loop.time() >= deadline:
            first = missing[0]
            raise MigrationError(
                f"the database lacks {len(missing)} migrations (first {first.component} {first.version:04d}_"
                f"{first.name}) after {within_s:.0f} s: run `hopcast migrate apply` for this service"
            )
        log.info("waiting for %d migrations (first %s %04d)", len(missing), missing[0].component, missing[0].version)
        await asyncio.sleep(interval_s)


class Database:
    """One service's database: `await Database.open(url, migrations)` then `db.transaction()`."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def open(
        cls,
        url: str,
        migrations: list[Migration] | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        migrations_url: str | None = None,
        migrate: bool = True,
        schema_wait_s: float = 600.0,
    ) -> Database:
        """Apply the kernel's, the service's and the tenant projection's migrations (as `migrations_url`'s role when
        given: the schema's owner), then open the pool (as `url`'s). With `migrate` False, apply
        nothing: wait up to `schema_wait_s` until someone else (`hopcast migrate apply`) has.

        Migrations come first because the vector codec needs the extension to exist.
        """
        every = all_migrations(migrations)
        if migrate:
            await migrate_database(migrations_url or url, every)
        else:
            await wait_for_schema(url, every, within_s=schema_wait_s)
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
        )
        return cls(pool, url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside a transaction: committed when the block ends, rolled back on error."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def is_ready(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        await self.pool.close()
