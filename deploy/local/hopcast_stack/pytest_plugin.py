"""pytest plugin (entry point `pytest11`): the session-scoped `stack` fixture, a private Kafka broker
and PostgreSQL server on free ports in a temporary state folder, so tests never touch the stack of
`make up` and leave nothing behind.

Nothing starts unless a test asks for `stack`, so unit-only runs stay fast. The broker's jars come
from the main state folder (HOPCAST_STATE_DIR/kafka/libs, resolved there once), not re-resolved
per session. Both servers stop at session end, also after failures; a session that was killed
outright leaves a folder that the next session finds and cleans up.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from hopcast_shared.settings import KafkaSettings
    from hopcast_stack.kafka import KafkaServer
    from hopcast_stack.kafka_cluster import KafkaCluster
    from hopcast_stack.postgres import PostgresServer
    from hopcast_stack.services import ServiceSet

# Every test stack lives under this folder, in a sub-folder named after the pytest process's pid.
TEST_STACKS_ROOT = Path(tempfile.gettempdir()) / "hopcast-test-stacks"
KEEP_ENV = "HOPCAST_KEEP_TEST_STACK"
# A test cluster's nodes: three JVMs on two cores, each with a small heap, C1 only (the JIT's
# second tier costs startup and buys throughput a test does not need) and one GC thread.
CLUSTER_TEST_HEAP_OPTS = (
    "-Xms96m -Xmx320m -XX:TieredStopAtLevel=1 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -XX:CICompilerCount=1"
)

T = TypeVar("T")


class TestStack:
    """A Kafka broker and a PostgreSQL server of its own, for one test session (or one test module
    that needs to stop and restart them).

    Its broker runs as `make up`'s does: SASL/SCRAM and ACLs on. `kafka_settings` is the
    super user's (`admin`: what a test that sets up or observes uses), `kafka_as(principal, prefix)`
    another principal's, after `await grant(prefix)` created the ACLs of topics under that prefix.

    `kafka_bootstrap`, `kafka_settings` (topics created), `database_url(name)`,
    `await new_database(prefix)`, `await start_services()` (the four services as processes of
    their own), `state_dir`; `kafka` and `postgres` are the servers themselves.
    """

    __test__ = False  # not a test class, despite its name

    def __init__(
        self, state_dir: Path, *, libs: Path | None = None, kafka_brokers: int = 1, postgres_home: Path | None = None
    ) -> None:
        from hopcast_stack import procs
        from hopcast_stack.config import StackSettings
        from hopcast_stack.kafka import KafkaServer
        from hopcast_stack.kafka_cluster import KafkaCluster
        from hopcast_stack.postgres import PostgresServer

        settings = StackSettings()
        self.state_dir = state_dir
        kafka_port, controller_port, pg_port, *cluster_ports = procs.free_ports(3 + 2 * kafka_brokers)
        libs = libs or settings.state_dir / "kafka" / "libs"
        self.kafka: KafkaServer | KafkaCluster
        if kafka_brokers > 1:
            # Three JVMs on two cores: a smaller heap each, C1 only, and G1 with one GC thread.
            self.kafka = KafkaCluster(
                home=state_dir / "kafka-cluster",
                ports_by_node=list(zip(cluster_ports[::2], cluster_ports[1::2], strict=True)),
                libs=libs,
                logs_dir=state_dir / "logs",
                run_dir=state_dir / "run",
                heap_opts=CLUSTER_TEST_HEAP_OPTS,
                ready_timeout_s=max(settings.kafka_ready_timeout_s, 90.0),
            )
        else:
            self.kafka = KafkaServer(
                home=state_dir / "kafka",
                libs=libs,
                port=kafka_port,
                controller_port=controller_port,
                logs_dir=state_dir / "logs",
                run_dir=state_dir / "run",
                # C1 only: the JIT's second tier costs about a second of startup and buys
                # throughput a test session does not need.
                heap_opts="-Xms128m -Xmx512m -XX:TieredStopAtLevel=1",
                ready_timeout_s=settings.kafka_ready_timeout_s,
                secure=True,
            )
        self.postgres: PostgresServer = PostgresServer(
            # Another home keeps the cluster (and its databases) when the stack's folder goes.
            home=postgres_home or state_dir / "postgres",
            port=pg_port,
            user=settings.postgres_user,
            system_user=settings.postgres_system_user,
            logs_dir=state_dir / "logs",
            ready_timeout_s=settings.postgres_ready_timeout_s,
            # A throwaway cluster: durability buys nothing, and every commit would wait for the disk.
            overrides={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
            fast_init=True,
        )
        self._databases: dict[str, str] = {}
        self._service_sets: list[ServiceSet] = []
        self._granted: set[str] = set()

    @classmethod
    def in_new_folder(
        cls, *, libs: Path | None = None, kafka_brokers: int = 1, postgres_home: Path | None = None
    ) -> TestStack:
        """A stack in a fresh folder under TEST_STACKS_ROOT, marked with our pid for the sweeper
        (`kafka_brokers=3`: a three-node KRaft cluster instead of the one broker; `postgres_home`:
        a PostgreSQL cluster kept there instead, which outlives the folder)."""
        TEST_STACKS_ROOT.mkdir(parents=True, exist_ok=True)
        state_dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=TEST_STACKS_ROOT))
        # mkdtemp makes it 0700; the postgres system user must be able to reach its data below it.
        state_dir.chmod(0o755)
        (state_dir / "kafka-brokers").write_text(f"{kafka_brokers}\n")
        return cls(state_dir, libs=libs, kafka_brokers=kafka_brokers, postgres_home=postgres_home)

    # What tests use ----------------------------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def kafka_settings(self) -> KafkaSettings:
        return self.kafka.client_settings("admin")

    def kafka_as(self, principal: str, topic_prefix: str = "", **updates: object) -> KafkaSettings:
        """Settings of a client acting as `principal` on the topics under `topic_prefix`."""
        return self.kafka.client_settings(principal, topic_prefix=topic_prefix, **updates)

    async def grant(self, topic_prefix: str = "") -> None:
        """Create the ACLs of every principal (hopcast_shared.acls) for the topics under the prefix."""
        from hopcast_shared.acls import acl_table, apply_acls

        if topic_prefix not in self._granted and self.kafka.secure:
            await apply_acls(self.kafka_settings, acl_table(topic_prefix))
            self._granted.add(topic_prefix)

    def database_url(self, name: str) -> str:
        """The URL of database `name` on this server, created (with pgvector) on first use."""
        if name not in self._databases:
            # Blocking on purpose, so sync and async tests can both call it; a thread with its own
            # event loop keeps clear of the test's running loop.
            self._databases[name] = _run_in_thread(self.postgres.create_database(name))
        return self._databases[name]

    async def new_database(self, prefix: str = "test") -> str:
        """A fresh, empty database named `<prefix>_<random>` with pgvector; returns its URL."""
        safe = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40] or "test"
        return await self.postgres.create_database(f"{safe}_{uuid.uuid4().hex[:12]}")

    async def start_services(
        self, *, topic_prefix: str | None = None, env: dict[str, str] | None = None, fast: bool = True
    ) -> ServiceSet:
        """The installed services as real processes (`python -m <module>`, as `make up` runs them)
        on this stack: their topics under a prefix of their own (created here), a fresh database
        each, free HTTP ports, the sandbox publisher, token keys of their own (`.keyring`) and a
        state folder under this stack's. `fast` polls and retries sooner (FAST_SERVICE_ENV).
        Returns once every /ready answers; `.stop()` them (the stack's `remove()` stops any left)."""
        from hopcast_shared.topics import ensure_topics
        from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet, installed_services

        prefix = topic_prefix or f"e{uuid.uuid4().hex[:10]}."
        kafka = self.kafka_settings.model_copy(update={"topic_prefix": prefix, "partitions": 3})
        await ensure_topics(kafka)
        await self.grant(prefix)
        urls = {name: await self.new_database(name) for name in installed_services()}
        services = ServiceSet(
            kafka=kafka,
            database_urls=urls,
            state_dir=self.state_dir / "services" / prefix.rstrip("."),
            extra_env={**(FAST_SERVICE_ENV if fast else {"PUBLISHER_ADAPTER": "sandbox"}), **(env or {})},
            credentials=self.kafka.credentials,
        )
        self._service_sets.append(services)
        try:
            await services.start()
        except BaseException:
            services.stop()
            raise
        return services

    # Lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start both servers concurrently (and the contract's topics and service databases)."""
        from hopcast_shared.settings import SERVICES
        from hopcast_stack.stack import _gather_or_raise

        async def kafka() -> None:
            await self.kafka.start()
            await self.kafka.create_topics(self.kafka_settings)
            # ACLs live in the metadata log: a restarted broker still has them.
            await self.grant("")

        async def postgres() -> None:
            await self.postgres.start()
            await self.postgres.create_databases(SERVICES)

        await _gather_or_raise(kafka(), postgres())

    def stop(self) -> None:
        """Stop both (each even when the other fails to stop); services started here keep running."""
        try:
            self.kafka.stop()
        finally:
            self.postgres.stop()

    async def restart(self) -> None:
        self.stop()
        await self.start()

    def remove(self) -> None:
        """Stop the services started here and both servers, and delete the folder (unless
        HOPCAST_KEEP_TEST_STACK is set, to read the logs)."""
        for services in self._service_sets:
            with contextlib.suppress(Exception):
                services.stop()
        # Their data goes with the folder, so a clean shutdown buys nothing: Kafka gets 2 s, then
        # SIGKILL (a controlled shutdown of a broker holding a session's thousands of partitions
        # took 6 to 35 s; of three nodes, about 10 s, the last waiting for a quorum that is gone),
        # and PostgreSQL stops without its shutdown checkpoint, unless its cluster lives outside
        # the folder and is kept (bench/run.py's, with the history templates). The logs stay whole.
        throwaway = self.postgres.home.resolve().is_relative_to(self.state_dir.resolve())
        try:
            self.kafka.stop(timeout=2)
        finally:
            self.postgres.stop(mode="immediate" if throwaway else "fast")
        if not os.environ.get(KEEP_ENV):
            _remove_in_background(self.state_dir)


def _remove_in_background(folder: Path) -> None:
    """Delete a stopped stack's folder without waiting for it: after a session it holds
    gigabytes (a database a test, every topic's log), and deleting it was the 17 to 23 s of
    `make test`'s last teardown. Renamed first (a stack's folder is found by its name), then
    removed by a process of its own that outlives this one; `sweep_abandoned_stacks` deletes
    what a killed remover left (the name still starts with the dead owner's pid)."""
    trash = folder.with_name(f"{folder.name}.removing")
    try:
        folder.rename(trash)
        subprocess.Popen(
            [sys.executable, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)", str(trash)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        shutil.rmtree(trash if trash.exists() else folder, ignore_errors=True)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sweep_abandoned_stacks() -> None:
    """Stop and delete the test stacks of pytest processes that no longer exist (killed sessions)."""
    import psutil

    if not TEST_STACKS_ROOT.is_dir():
        return
    for folder in TEST_STACKS_ROOT.iterdir():
        owner = folder.name.split("-", 1)[0]
        if not owner.isdigit() or psutil.pid_exists(int(owner)):
            continue
        with contextlib.suppress(Exception):
            _stop_abandoned_services(folder)
        with contextlib.suppress(Exception):
            # The folder says how many brokers its stack had (the ports are found from pid files).
            marker = folder / "kafka-brokers"
            brokers = int(marker.read_text()) if marker.is_file() else 1
            TestStack(folder, kafka_brokers=brokers).stop()
        shutil.rmtree(folder, ignore_errors=True)


def _stop_abandoned_services(folder: Path) -> None:
    """Services a killed session started (start_services): their pid files are under services/*/run."""
    from hopcast_stack import procs

    for pid_file in folder.glob("services/*/run/*.pid"):
        proc = procs.find_process(pid_file, f"-m hopcast_{pid_file.stem}")
        if proc is not None:
            procs.terminate(proc, timeout=10)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack() -> AsyncIterator[TestStack]:
    """The session's own Kafka and PostgreSQL (see TestStack), started on first use."""
    from hopcast_stack.errors import StackError

    sweep_abandoned_stacks()
    # A second attempt, in a new folder on new ports, when the first does not start: on a busy
    # machine another process can take a chosen port before the JVM binds it.
    for attempt in (1, 2):
        test_stack = TestStack.in_new_folder()
        try:
            await test_stack.start()
            break
        except StackError as exc:
            log_tail = str(exc)
            test_stack.remove()
            if attempt == 2:
                pytest.fail(f"the test stack did not start (twice): {log_tail}", pytrace=False)
            warnings.warn(f"the test stack did not start, trying again: {log_tail}", stacklevel=1)
    # Belt and braces: if the session dies before fixture teardown, stop at interpreter exit.
    atexit.register(test_stack.remove)
    try:
        yield test_stack
    finally:
        atexit.unregister(test_stack.remove)
        test_stack.remove()
