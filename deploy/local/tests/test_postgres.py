"""The session's real PostgreSQL: one database per service with pgvector, fresh databases on demand,
listening on loopback only, and not running as root."""

from __future__ import annotations

import math
import os

import asyncpg
import psutil
import pytest

from hopcast_shared.settings import SERVICES
from hopcast_stack.pytest_plugin import TestStack

pytestmark = pytest.mark.integration

# Cosine distance of [1,2,3] and [1,2,4]: 1 - 17 / (sqrt(14) * sqrt(21)).
EXPECTED_DISTANCE = 1 - 17 / (math.sqrt(14) * math.sqrt(21))


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_database_exists_with_pgvector(stack: TestStack, service: str) -> None:
    url = stack.database_url(service)
    assert url.endswith(f"/{service}")
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_database()") == service
        distance = await conn.fetchval("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector")
        assert distance == pytest.approx(EXPECTED_DISTANCE, abs=1e-6)
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    finally:
        await conn.close()


async def test_new_databases_are_fresh_and_distinct(stack: TestStack) -> None:
    first, second = await stack.new_database("My-Test"), await stack.new_database("My-Test")
    assert first != second
    for url in (first, second):
        conn = await asyncpg.connect(url)
        try:
            name = await conn.fetchval("SELECT current_database()")
            assert name.startswith("my_test_")
            tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables == 0
            await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3))")
        finally:
            await conn.close()
    # A table made in one is absent from the other.
    conn = await asyncpg.connect(second)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.t') IS NOT NULL")
    finally:
        await conn.close()


async def test_database_url_is_stable_for_a_name(stack: TestStack) -> None:
    assert stack.database_url("reports") == stack.database_url("reports")
    conn = await asyncpg.connect(stack.database_url("reports"))
    try:
        assert await conn.fetchval("SELECT current_database()") == "reports"
    finally:
        await conn.close()


async def test_server_listens_on_loopback_and_its_socket_and_is_not_root(stack: TestStack) -> None:
    conn = await asyncpg.connect(stack.postgres.url())
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SHOW port") == str(stack.postgres.port)
    finally:
        await conn.close()
    # The Unix socket in the state folder works too.
    conn = await asyncpg.connect(
        user=stack.postgres.user, database="postgres", host=str(stack.postgres.socket_dir), port=stack.postgres.port
    )
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    postmaster = stack.postgres.process()
    assert postmaster is not None
    if os.geteuid() == 0:
        assert postmaster.username() == stack.postgres.system_user != "root"
    assert psutil.Process(postmaster.pid).is_running()
