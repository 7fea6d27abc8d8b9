"""The installed Hopcast services, run as local processes: each part that is a service declares itself
in the `hopcast.services` entry-point group (name -> module runnable as `python -m <module>`); the
stack starts it detached with the stack's connection settings and waits for its /ready.

`ServiceSet` is the four of them with a configuration of their own (a topic prefix, their own
databases and HTTP ports, a state folder, token keys): what the end-to-end suite starts on the
test session's broker and server, beside anything `make up` runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import psutil

from hopcast_shared.auth import dev_auth_env, issue_dev_token
from hopcast_shared.crypto import Keyring, new_key_entry
from hopcast_shared.settings import SERVICES, KafkaSettings
from hopcast_stack import procs
from hopcast_stack.credentials import Credentials
from hopcast_stack.errors import StackError

# A service's environment: one for all, or each its own (its own Kafka principal).
ServiceEnv = Mapping[str, str] | Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class ServiceProcess:
    """One service's process under the state folder: <state>/logs/<label>.log, <state>/run/<label>.pid.
    A service may run as several replicas (the same configuration, each its own HTTP port): the
    first is labelled by the service's name, the others `<name>-<replica>`."""

    name: str
    module: str
    http_port: int
    state_dir: Path
    replica: int = 1

    @property
    def label(self) -> str:
        return self.name if self.replica == 1 else f"{self.name}-{self.replica}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.label}.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.label}.pid"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/ready"

    def process(self) -> psutil.Process | None:
        return procs.find_process(self.pid_file, f"-m {self.module}")

    def is_running(self) -> bool:
        return self.process() is not None

    def spawn(self, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        if procs.port_in_use(self.http_port):
            raise StackError(
                f"{self.label} cannot serve HTTP on 127.0.0.1:{self.http_port}: "
                f"{procs.describe_port_owner(self.http_port)}. Stop it, or set {self.name.upper()}_HTTP_PORT."
            )
        return procs.spawn(
            [sys.executable, "-m", self.module], log=self.log_file, pid_file=self.pid_file, env=env, cwd=self.state_dir
        )

    async def wait_ready(self, timeout_s: float, child: subprocess.Popen[bytes] | None = None) -> None:
        """Poll GET /ready until it answers 200; fail fast when the process (`child`, when this
        process started it) exits, saying how."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = "no answer yet"
        while True:
            procs.keep_pid_file(self.pid_file, child)
            how = procs.exited(child, child is not None or self.is_running())
            if how is not None:
                raise StackError(
                    f"{self.label} {how} during startup; the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            status, last = await asyncio.to_thread(_get, self.ready_url)
            if status == 200:
                return
            if loop.time() > deadline:
                raise StackError(
                    f"{self.label} was not ready after {timeout_s:.0f}s ({self.ready_url}: {last}); "
                    f"the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            await asyncio.sleep(0.25)

    def stop(self, *, timeout: float = 20.0) -> bool:
        proc = self.process()
        if proc is None:
            return False
        procs.terminate(proc, timeout=timeout)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return True


def _get(url: str, limit: int = 200, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (a fixed http://127.0.0.1 URL)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (a fixed http://127.0.0.1 URL)
            return response.status, response.read(limit).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(limit).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def installed_services() -> dict[str, str]:
    """name -> module of every installed service, in the contract's order (SERVICES), then by name."""
    found = {ep.name: ep.value for ep in entry_points(group="hopcast.services")}
    order = {name: i for i, name in enumerate(SERVICES)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def local_auth_env(base: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    """The HTTP_AUTH_* settings of locally run services: the state folder's development key (what
    `hopcast auth dev-token` signs with), unless a key source is configured already; what the
    caller set (an issuer, say) is kept. Never in production, which must name its own key."""
    configured = ("HTTP_AUTH_JWKS_URL", "HTTP_AUTH_PUBLIC_KEY", "HTTP_AUTH_PUBLIC_KEY_FILE")
    if base.get("HOPCAST_ENV") == "production" or any(base.get(name) for name in configured):
        return {}
    return {name: value for name, value in dev_auth_env(state_dir).items() if not base.get(name)}


def service_env(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment a service runs with: ours, plus the stack's connection settings; the
    service's logs go to a file a person reads, so text unless told otherwise."""
    env = {**base, **overrides, "PYTHONUNBUFFERED": "1"}
    env.setdefault("HOPCAST_LOG_FORMAT", "text")
    return env


def current_env() -> dict[str, str]:
    return dict(os.environ)


async def start_services(services: Sequence[ServiceProcess], env: ServiceEnv, *, timeout_s: float) -> dict[str, float]:
    """Spawn every service, then wait for all their /ready at once; returns the seconds each took.
    A service that does not get ready is stopped (a half-started one would only confuse the next
    start) and the error names every failure with its log."""
    began = time.monotonic()
    children = {
        service.label: service.spawn(
            {
                **(env(service.name) if callable(env) else env),
                f"{service.name.upper()}_HTTP_PORT": str(service.http_port),
            }
        )
        for service in services
    }
    took: dict[str, float] = {}

    async def ready(service: ServiceProcess) -> None:
        try:
            await service.wait_ready(timeout_s, children[service.label])
        except StackError:
            service.stop(timeout=5)
            raise
        took[service.label] = time.monotonic() - began

    results = await asyncio.gather(*(ready(s) for s in services), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, StackError):
            raise failure
    if failures:
        raise StackError("\n\n".join(str(f) for f in failures))
    return took


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """The KAFKA_* variables that make a service's KafkaSettings equal `kafka`."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_CLIENT_ID_PREFIX": kafka.client_id_prefix,
        "KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "KAFKA_PARTITIONS": str(kafka.partitions),
        "KAFKA_REPLICATION_FACTOR": str(kafka.replication_factor),
    }
    optional: dict[str, Any] = {
        "KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
        "KAFKA_SASL_USERNAME": kafka.sasl_username,
        "KAFKA_SASL_PASSWORD": kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        "KAFKA_SSL_CAFILE": kafka.ssl_cafile,
        "KAFKA_SSL_CERTFILE": kafka.ssl_certfile,
        "KAFKA_SSL_KEYFILE": kafka.ssl_keyfile,
    }
    env.update({k: str(v) for k, v in optional.items() if v is not None})
    return env


# What makes a run go through in a second or two instead of several: the publishing loop and the
# relay poll more often (both are also woken by NOTIFY), handlers retry sooner, and the sandbox
# posts without the per-account pause a real platform needs.
FAST_SERVICE_ENV: dict[str, str] = {
    "PUBLISHER_ADAPTER": "sandbox",
    "PUBLISHER_POLL_INTERVAL_S": "0.5",
    "PUBLISHER_ACCOUNT_MIN_INTERVAL_S": "0",
    "SCHEDULER_TICK_INTERVAL_S": "0.5",
    # A minute of a schedule's approval_ttl_minutes lasts a second, so a draft's approval
    # deadline passes within a test; the expiry watcher looks twice a second.
    "CONTENT_APPROVAL_MINUTE_S": "1",
    "PUBLISHER_EXPIRY_INTERVAL_S": "0.5",
    **{f"{name.upper()}_HANDLER_BACKOFF_INITIAL_S": "0.02" for name in SERVICES},
    **{f"{name.upper()}_OUTBOX_POLL_INTERVAL_S": "0.5" for name in SERVICES},
}


@dataclass
class ServiceSet:
    """The installed services as processes of one configuration of their own: a Kafka (with its
    topic prefix), a database per service, free HTTP ports, a state folder (logs, pid files) and
    token keys (`keyring` encrypts what an upstream producer puts in events); their HTTP reads
    trust the state folder's development key (`token(organizations)` signs with it). With
    `credentials` (a broker with SASL/SCRAM and ACLs) each service connects as its own principal,
    and `kafka` is the observer's (admin) settings; `kafka_as("upstream")` is an upstream producer's.

    `await start()`, `stop()`, `url(name, path)`, `await get_json(name, path, organization=...)`;
    `await add_replicas({name: n})` starts n more processes of a service (its first stays `url`'s).
    """

    kafka: KafkaSettings
    database_urls: Mapping[str, str]
    state_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    credentials: Credentials | None = None
    ready_timeout_s: float = 90.0
    processes: list[ServiceProcess] = field(init=False)
    token_keys: str = field(init=False)

    def __post_init__(self) -> None:
        names = list(self.database_urls)
        ports = procs.free_ports(len(names))
        self.processes = [
            ServiceProcess(name, installed_services()[name], port, self.state_dir)
            for name, port in zip(names, ports, strict=True)
        ]
        self.token_keys = self.extra_env.get("TOKEN_KEYS") or new_key_entry(1)

    @property
    def keyring(self) -> Keyring:
        return Keyring.parse(self.token_keys)

    def kafka_as(self, principal: str) -> KafkaSettings:
        """`kafka` as `principal` authenticates (unchanged without credentials)."""
        return self.credentials.client_settings(self.kafka, principal) if self.credentials else self.kafka

    def env(self, name: str | None = None) -> dict[str, str]:
        """The environment of service `name` (connected as its own principal), or the common one."""
        values = {
            **kafka_env(self.kafka_as(name) if name else self.kafka),
            "HOPCAST_STATE_DIR": str(self.state_dir),
            "TOKEN_KEYS": self.token_keys,
            **dev_auth_env(self.state_dir),
            **{f"{name.upper()}_DATABASE_URL": url for name, url in self.database_urls.items()},
            **self.extra_env,
        }
        return service_env(current_env(), values)

    def port(self, name: str) -> int:
        return next(p.http_port for p in self.processes if p.name == name)

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port(name)}{path}"

    def token(self, organizations: Sequence[str], *, ttl_s: int = 600) -> str:
        """A bearer token these services accept, for reading `organizations`."""
        return issue_dev_token(organizations, ttl_s=ttl_s, folder=self.state_dir)

    async def get_json(
        self, name: str, path: str, *, organization: str | None = None, token: str | None = None
    ) -> tuple[int, Any]:
        """GET a service's JSON route as a reader of `organization` (or with `token`; neither:
        no Authorization header): (status, parsed body or None)."""
        if token is None and organization is not None:
            token = self.token([organization])
        status, text = await asyncio.to_thread(_get, self.url(name, path), 64 * 1024, token)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, None

    async def start(self) -> dict[str, float]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return await start_services(self.processes, self.env, timeout_s=self.ready_timeout_s)

    async def add_replicas(self, counts: Mapping[str, int]) -> list[ServiceProcess]:
        """`counts[name]` more processes of each service `name`, configured as the others (the
        same database, the same consumer group, so Kafka shares the group's partitions among
        them), each on a free HTTP port; started together, returned once all are ready."""
        names = [name for name, n in counts.items() for _ in range(n)]
        added = []
        for name, port in zip(names, procs.free_ports(len(names)), strict=True):
            replica = 1 + max(p.replica for p in self.processes if p.name == name)
            added.append(ServiceProcess(name, installed_services()[name], port, self.state_dir, replica))
            self.processes.append(added[-1])  # before it starts: stop() ends it whatever happens
        await start_services(added, self.env, timeout_s=self.ready_timeout_s)
        return added

    def running(self) -> list[str]:
        return [p.name for p in self.processes if p.is_running()]

    def stop(self) -> list[str]:
        """Stop them all at once (each flushes its outbox and commits offsets on the way out)."""
        stopped: list[str] = []

        def stop_one(process: ServiceProcess) -> None:
            if process.stop(timeout=15):
                stopped.append(process.label)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.processes))) as pool:
            list(pool.map(stop_one, self.processes))
        return stopped
