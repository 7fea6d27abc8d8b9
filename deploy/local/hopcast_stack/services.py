"""The installed Hopcast services, run as local processes: each part that is a service declares itself
in the `hopcast.services` entry-point group (name -> module runnable as `python -m <module>`); the
stack starts it detached with the stack's connection settings and waits for its /ready."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import psutil

from hopcast_shared.settings import SERVICES
from hopcast_stack import procs
from hopcast_stack.errors import StackError


@dataclass(frozen=True)
class ServiceProcess:
    """One service's process under the state folder: <state>/logs/<name>.log, <state>/run/<name>.pid."""

    name: str
    module: str
    http_port: int
    state_dir: Path

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/ready"

    def process(self) -> psutil.Process | None:
        return procs.find_process(self.pid_file, f"-m {self.module}")

    def is_running(self) -> bool:
        return self.process() is not None

    def spawn(self, env: Mapping[str, str]) -> None:
        if procs.port_in_use(self.http_port):
            raise StackError(
                f"{self.name} cannot serve HTTP on 127.0.0.1:{self.http_port}: "
                f"{procs.describe_port_owner(self.http_port)}. Stop it, or set {self.name.upper()}_HTTP_PORT."
            )
        procs.spawn(
            [sys.executable, "-m", self.module], log=self.log_file, pid_file=self.pid_file, env=env, cwd=self.state_dir
        )

    async def wait_ready(self, timeout_s: float) -> None:
        """Poll GET /ready until it answers 200; fail fast when the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = "no answer yet"
        while True:
            if not self.is_running():
                raise StackError(
                    f"{self.name} exited during startup; the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            status, last = await asyncio.to_thread(_get, self.ready_url)
            if status == 200:
                return
            if loop.time() > deadline:
                raise StackError(
                    f"{self.name} was not ready after {timeout_s:.0f}s ({self.ready_url}: {last}); "
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


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (a fixed http://127.0.0.1 URL)
            return response.status, response.read(200).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(200).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def installed_services() -> dict[str, str]:
    """name -> module of every installed service, in the contract's order (SERVICES), then by name."""
    found = {ep.name: ep.value for ep in entry_points(group="hopcast.services")}
    order = {name: i for i, name in enumerate(SERVICES)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def service_env(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment a service runs with: ours, plus the stack's connection settings; the
    service's logs go to a file a person reads, so text unless told otherwise."""
    env = {**base, **overrides, "PYTHONUNBUFFERED": "1"}
    env.setdefault("HOPCAST_LOG_FORMAT", "text")
    return env


def current_env() -> dict[str, str]:
    return dict(os.environ)
