"""Starting, restarting, killing and stopping servers, on a private stack of this module (the
session's stack must stay up for everyone else): data survives restarts, a killed broker comes
back, a stale pid file confuses nothing, and a stop leaves no port held."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator

import asyncpg
import psutil
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hopcast_shared.kafka import connection_kwargs
from hopcast_stack import procs
from hopcast_stack.pytest_plugin import TestStack

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def private() -> AsyncIterator[TestStack]:
    own = TestStack.in_new_folder()
    try:
        await own.start()
        yield own
    finally:
        own.remove()


async def test_start_is_idempotent(private: TestStack) -> None:
    kafka_pid, pg_pid = private.kafka.process(), private.postgres.process()
    assert kafka_pid is not None and pg_pid is not None
    assert await private.kafka.start() is False
    assert await private.postgres.start() is False
    assert private.kafka.process() == kafka_pid
    assert private.postgres.process() == pg_pid


async def test_restart_keeps_topics_messages_and_rows(private: TestStack, read_all) -> None:
    topic = f"survivor.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**connection_kwargs(private.kafka_settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**connection_kwargs(private.kafka_settings), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"kept", key=b"k")
    finally:
        await producer.stop()
    url = await private.new_database("restart")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, embedding vector(3))")
        await conn.execute("INSERT INTO kept VALUES (1, '[1,2,3]')")
    finally:
        await conn.close()
    old_kafka = private.kafka.process()

    await private.restart()

    assert private.kafka.process() != old_kafka
    records = await read_all(private.kafka_settings, topic, expect=1)
    assert [r.value for r in records] == [b"kept"]
    admin = AIOKafkaAdminClient(**connection_kwargs(private.kafka_settings))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 2
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT embedding::text FROM kept WHERE id = 1") == "[1,2,3]"
    finally:
        await conn.close()


async def test_a_stale_pid_file_confuses_nothing(private: TestStack) -> None:
    running = private.kafka.process()
    assert running is not None
    # A pid file naming a live process that is not our broker (this very test process).
    pid_file = private.kafka.pid_file
    pid_file.write_text(f"{os.getpid()}\n")
    assert private.kafka.is_running() is False
    assert not pid_file.exists()  # removed, so it cannot mislead a later stop
    procs.write_pid(pid_file, running.pid)
    assert private.kafka.is_running()


async def test_a_killed_broker_comes_back_with_its_data(private: TestStack) -> None:
    jvm = private.kafka.process()
    assert jvm is not None
    jvm.send_signal(signal.SIGKILL)
    jvm.wait(10)
    assert private.kafka.is_running() is False
    assert not private.kafka.pid_file.exists()

    assert await private.kafka.start() is True
    assert await private.kafka.create_topics(private.kafka_settings) == []  # the topics survived


async def test_stop_leaves_no_port_listening_and_no_process(private: TestStack) -> None:
    kafka_jvm, postmaster = private.kafka.process(), private.postgres.process()
    assert kafka_jvm is not None and postmaster is not None
    ports = [private.kafka.port, private.kafka.controller_port, private.postgres.port]
    assert all(procs.port_in_use(p) for p in ports)

    private.stop()

    assert [p for p in ports if procs.port_in_use(p)] == []
    assert not psutil.pid_exists(kafka_jvm.pid) or not procs.alive(kafka_jvm)
    assert not psutil.pid_exists(postmaster.pid) or not procs.alive(postmaster)
    assert private.kafka.is_running() is False and private.postgres.is_running() is False
    # Stopping what is stopped is fine.
    assert private.kafka.stop() is False and private.postgres.stop() is False
