"""Detached processes of the stack: start one in its own session with its log and pid file, tell
whether a pid file still points at *our* process, stop it politely then firmly, and probe ports."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

# `spawn` writes this, then the date and command, before each run's output in a log; `tail` finds it.
RUN_MARKER = "\n--- "


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` detached: its own session (Ctrl-C in the terminal does not reach it, so the stack
    decides when it stops), stdin closed, stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"{RUN_MARKER}{time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    if pid_file is not None:
        write_pid(pid_file, proc.pid)
    return proc


def exited(child: subprocess.Popen[bytes] | None, running: bool) -> str | None:
    """Whether a process being started has exited, and how; None while it runs.

    `child` (the Popen that started it, when this process did) is the authority: a pid file
    can be gone while its process runs (removed by a concurrent check that found the previous,
    killed process's pid in it), and a process we started can be asked for its exit status.
    `running` (what the pid file says) decides when there is no child."""
    if child is None:
        return None if running else "exited (no exit status: not started by this process)"
    code = child.poll()
    if code is None:
        return None
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def keep_pid_file(pid_file: Path, child: subprocess.Popen[bytes] | None) -> None:
    """While a child we started runs, its pid file names it: written again if something removed
    or replaced it (a check that found the previous, killed process's pid there removes it)."""
    if child is not None and child.poll() is None and read_pid(pid_file) != child.pid:
        write_pid(pid_file, child.pid)


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a child we have not reaped yet is dead for our purposes)."""
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_process(pid_file: Path, *markers: str) -> psutil.Process | None:
    """The live process the pid file names, if its command line contains every marker.

    A pid file outlives a crash or a reboot, and the pid may since belong to someone else:
    such a stale file is removed, so it cannot confuse the next start or stop.
    """
    pid = read_pid(pid_file)
    if pid is not None:
        try:
            proc = psutil.Process(pid)
            if alive(proc) and all(m in " ".join(proc.cmdline()) for m in markers):
                return proc
        except psutil.Error:
            pass
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return None


def terminate(proc: psutil.Process, *, timeout: float = 20.0) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. True when it stopped on its own (clean shutdown)."""
    try:
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return True
    try:
        proc.wait(timeout)  # also reaps it when it is our child
        return True
    except psutil.TimeoutExpired:
        pass
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()
        proc.wait(5)
    return False


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port (or otherwise holds it): we try to bind it ourselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections of a stopped server in TIME_WAIT do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def describe_port_owner(port: int) -> str:
    """Who listens on a port, as far as we may know ("pid 123: java ..."), for error messages."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                try:
                    cmdline = " ".join(psutil.Process(conn.pid).cmdline())
                except psutil.Error:
                    cmdline = "?"
                return f"held by pid {conn.pid} ({cmdline[:160]})"
    except psutil.Error:
        pass
    return "held by another process"


def wait_ports_free(ports: Sequence[int], *, timeout: float = 10.0) -> list[int]:
    """Wait until none of `ports` is held; returns those still held when time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [p for p in ports if port_in_use(p)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.1)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now on 127.0.0.1.

    Chosen below the ephemeral range on purpose: a port the OS hands out for binding to 0 comes
    from the same pool as the source ports of outgoing connections, so a busy test session could
    take it between our choice and the server's bind (the JVM binds seconds later).
    """
    low, _ = _ephemeral_range()
    candidates = list(range(20000, max(20000 + 10 * count, low)))
    random.shuffle(candidates)
    chosen = [p for p in candidates[: 50 * count] if not port_in_use(p)][:count]
    if len(chosen) < count:
        raise RuntimeError(f"found only {len(chosen)} free ports of {count}")
    return chosen


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log, for error messages; only the latest run's, when `spawn`
    marked where it began (an earlier run's lines would only mislead)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    start = text.rfind(RUN_MARKER)
    if start >= 0:
        text = text[start + 1 :]
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on `path` (made with its folder when missing), held
    for the block: `make up` in one terminal and a test session or `make env` in another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
