"""`make run` itself (`hopcast stack run`), as a person starts it: a stack of its own in an empty
state folder (free ports, the jars shared), the demo flowing within a minute, every run it fires
ending, and Ctrl-C stopping everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from hopcast_shared.settings import SERVICES
from hopcast_stack import procs
from hopcast_stack.config import StackSettings
from hopcast_stack.pytest_plugin import TestStack

pytestmark = pytest.mark.e2e

# Settings of the caller's own stack that must not leak into this one.
ISOLATE = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "TOKEN_KEYS",
    *(f"{s.upper()}_DATABASE_URL" for s in SERVICES),
    *(name for name in os.environ if name.startswith("HTTP_AUTH_")),
}
READ_HINT = re.compile(r"dev-token -o (?P<org>[0-9a-f-]{36})\)\" (?P<url>127\.0\.0\.1:\d+/organizations/\S+/credits)")
RUN_LINE = re.compile(r"^run [0-9a-f]{8} (?P<org>.+?) / (?P<schedule>.+?): (?P<outcome>[A-Z_]+) in ")


async def test_make_run_plays_the_demo_and_ctrl_c_stops_everything(stack: TestStack) -> None:
    # Under the session stack's folder, which the postgres system user may traverse (tmp_path
    # is private); the jars are the main state folder's, which the session's broker resolved.
    state = stack.state_dir / f"make-run-{uuid.uuid4().hex[:8]}"
    (state / "kafka").mkdir(parents=True)
    (state / "kafka" / "libs").symlink_to(StackSettings().state_dir / "kafka" / "libs")
    kafka, controller, pg, *http = procs.free_ports(7)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ISOLATE},
        "HOPCAST_STATE_DIR": str(state),
        "KAFKA_PORT": str(kafka),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "POSTGRES_PORT": str(pg),
        **{f"{name.upper()}_HTTP_PORT": str(port) for name, port in zip(SERVICES, http, strict=True)},
    }

    hopcast = Path(sys.executable).parent / "hopcast"
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(hopcast),
        "stack",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    outcomes: list[tuple[str, str]] = []
    first_outcome_after: float | None = None

    async def read_until(pattern: str, within: float) -> str:
        nonlocal first_outcome_after
        assert proc.stdout is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(proc.stdout.readline(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break  # said below, with the output so far
            if not raw:
                break
            line = raw.decode().rstrip()
            lines.append(line)
            match = RUN_LINE.match(line)
            if match:
                outcomes.append((match["schedule"], match["outcome"]))
                if first_outcome_after is None:
                    first_outcome_after = time.monotonic() - began
            if pattern in line:
                return line
        raise AssertionError(f"no {pattern!r} within {within}s; output:\n" + "\n".join(lines[-40:]))

    # Whatever fails before the Ctrl-C below stops the stack too: left running, it would outlive
    # the session's folder and leave its services behind.
    try:
        done = await read_until("runs it fired all have an outcome", within=150)
        assert "the 15 runs it fired" in done
        assert first_outcome_after is not None and first_outcome_after < 60, first_outcome_after
        assert len(outcomes) >= 15
        assert {o for _, o in outcomes} >= {"PUBLISHED", "PARTIALLY_PUBLISHED", "SKIPPED_DUPLICATE", "REJECTED"}
        assert "Lumen Yoga: Daily inspiration" in {s for s, _ in outcomes}
        # The live view marks the posts that went out with an image (issue 18).
        assert any(
            RUN_LINE.match(line) and "INSTAGRAM ok" in line and line.endswith("🖼 [1 image]") for line in lines
        ), "\n".join(lines[-40:])

        # The reads are authenticated with nothing set up by hand: the hint's development token
        # reads the demo organization's credits, and no token reads nothing.
        [hint] = [m for m in map(READ_HINT.search, lines) if m]
        token = await _dev_token(hopcast, hint["org"], env)
        assert await asyncio.to_thread(_status, f"http://{hint['url']}", None) == 401
        assert await asyncio.to_thread(_status, f"http://{hint['url']}", token) == 200
    except BaseException:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=90)
        raise

    # Ctrl-C: the demo, the services, Kafka and PostgreSQL stop, and nothing is left running.
    pids = [procs.read_pid(p) for p in (state / "run").glob("*.pid")]
    assert len(pids) >= 5  # kafka and the four services (postgres keeps its own pid file)
    proc.send_signal(signal.SIGINT)
    await read_until("stopped scheduler, content, billing, publisher, kafka, postgres", within=90)
    assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    assert not [pid for pid in pids if pid is not None and psutil.pid_exists(pid) and _alive(pid)]
    assert procs.wait_ports_free([kafka, controller, pg, *http], timeout=10) == []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def _dev_token(hopcast: Path, org: str, env: dict[str, str]) -> str:
    made = await asyncio.create_subprocess_exec(
        str(hopcast), "auth", "dev-token", "-o", org, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await made.communicate()
    assert made.returncode == 0
    return out.decode().strip()


def _status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (http://127.0.0.1)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
