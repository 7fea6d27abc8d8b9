"""PostgreSQL access: migrations at start, then an asyncpg pool with the pgvector and JSON codecs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pgvector.asyncpg import register_vector

from hopcast_shared.migrations import Migration, apply_migrations, kernel_migrations, tenant_migrations

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
    ) -> Database:
        """Apply the kernel's, the service's and the tenant projection's migrations (as `migrations_url`'s role when
        given: the schema's owner), then open the pool (as `url`'s).

        Migrations come first because the vector codec needs the extension to exist.
        """
        conn = await asyncpg.connect(migrations_url or url)
        try:
            await apply_migrations(conn, kernel_migrations() + list(migrations or []) + tenant_migrations())
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection)
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
