"""`hopcast stack ...`: run the local stack (what `make run`, `make up`, `make infra-up`, `make env`
and `make status` call). Every command is idempotent; a failure exits non-zero with the tail of
the failing part's log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from hopcast_shared.listing import print_json_lines, print_table
from hopcast_stack.config import load_settings
from hopcast_stack.errors import StackError
from hopcast_stack.stack import Stack, StartReport

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Run the local stack: Kafka, PostgreSQL, services.")
console = Console()
errors = Console(stderr=True)

T = TypeVar("T")


def _stack() -> Stack:
    return Stack(load_settings())


def _fail(exc: StackError) -> typer.Exit:
    errors.print(f"[bold red]hopcast stack:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(make())
    except StackError as exc:
        raise _fail(exc) from None


def _print_report(report: StartReport) -> None:
    for name, seconds in report.parts():
        if seconds is None:
            console.print(f"[dim]running[/] {name}", highlight=False)
        else:
            console.print(f"[green]started[/] {name} ({seconds:.1f}s)", highlight=False)
    if report.topics_created:
        console.print(f"[green]created topics[/] {', '.join(report.topics_created)}", highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)


@app.command("infra-up")
def infra_up() -> None:
    """Start Kafka and PostgreSQL unless they run; create topics and databases; return when ready."""
    stack = _stack()
    with stack.locked():
        _print_report(_run_async(stack.infra_up))


@app.command("infra-down")
def infra_down() -> None:
    """Stop Kafka and PostgreSQL (data kept)."""
    stack = _stack()
    with stack.locked():
        try:
            stopped = stack.infra_down()
        except StackError as exc:
            raise _fail(exc) from None
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def up() -> None:
    """Start whatever part of the stack is not running (infrastructure, then the installed services)."""
    stack = _stack()
    with stack.locked():
        _print_report(_run_async(stack.up))


@app.command()
def down() -> None:
    """Stop the services, then Kafka and PostgreSQL (data kept)."""
    stack = _stack()
    with stack.locked():
        try:
            stopped = stack.down()
        except StackError as exc:
            raise _fail(exc) from None
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def env(
    role: str = typer.Option(
        "upstream", "--role", help="whose Kafka client settings: upstream, dashboard, admin or a service's name"
    ),
) -> None:
    """Print the connection settings of the local stack (KEY=value lines, ready for `export`)."""
    try:
        values = _stack().env(role)
    except StackError as exc:
        raise _fail(exc) from None
    for key, value in values.items():
        # Plain print: no rich markup or wrapping, the output is meant for scripts.
        print(f"{key}={value}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="one JSON part a line")) -> None:
    """What runs, with pids, addresses and logs."""
    stack = _stack()
    parts = stack.status()
    if as_json:
        print_json_lines(
            {"part": p.name, "running": p.running, "pid": p.pid, "address": p.address, "log": p.log, "note": p.note}
            for p in parts
        )
        return
    print_table(
        f"Hopcast local stack ({stack.state_dir})",
        ("part", "state", "pid", "address", "log"),
        (
            (p.name, "running" if p.running else (p.note or "stopped"), str(p.pid or ""), p.address, p.log)
            for p in parts
        ),
    )


@app.command()
def run(
    demo: bool = typer.Option(
        True, "--demo/--no-demo", help="Seed the demo organizations and fire runs (--no-demo: only run the system)."
    ),
) -> None:
    """`make run`: bring everything up, show a live view of the runs, stop it all on Ctrl-C or SIGTERM."""
    stack = _stack()
    try:
        with stack.locked():
            _print_report(_run_async(stack.up))
        missing = stack.not_installed()
        if missing:
            console.print(f"[yellow]Not built yet:[/] {', '.join(missing)}.")
        console.print("[bold]Connection settings[/] of an upstream producer (`make env` prints the password):")
        for key, value in stack.env().items():
            shown = "…" if key == "KAFKA_SASL_PASSWORD" else value
            console.print(f"  {key}={shown}", highlight=False, soft_wrap=True)
        if not demo:
            console.print(f"[bold]HTTP reads[/] need a bearer token: {_read_hint(stack, 'ORG')}", highlight=False)
        _run_async(lambda: _live(stack, demo=demo and not missing))
    finally:
        console.print("stopping...")
        with stack.locked():
            try:
                stopped = stack.down()
            except StackError as exc:
                raise _fail(exc) from None
        console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


def _read_hint(stack: Stack, org: str) -> str:
    """How to read an organization's credits over HTTP with a development token."""
    return (
        f'curl -H "Authorization: Bearer $(.venv/bin/hopcast auth dev-token -o {org})" '
        f"127.0.0.1:{stack.settings.http_port('billing')}/organizations/{org}/credits"
    )


async def _live(stack: Stack, *, demo: bool, refresh_s: float = 0.25) -> None:
    """Follow the topics into a Board and draw it until Ctrl-C or SIGTERM; with `demo`, seed the
    demo and fire its runs meanwhile. On a terminal the view redraws in place; otherwise (a log,
    a pipe) each run's outcome is printed as a line."""
    from rich.live import Live

    from hopcast_shared.crypto import load_keyring
    from hopcast_stack.demo import Demo
    from hopcast_stack.overview import PARTS, poll_overviews
    from hopcast_stack.upstream import Upstream
    from hopcast_stack.view import Board, follow, render

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    board = Board()
    following = asyncio.Event()
    notes: list[str] = []
    demo_run: Demo | None = None

    async def read() -> None:
        async for message in follow(stack.kafka_settings, ready=following):
            board.apply(message)

    async def play() -> None:
        nonlocal demo_run
        # The services read their local token key from the state folder: encrypt with the same one.
        os.environ.setdefault("HOPCAST_STATE_DIR", str(stack.state_dir))
        upstream_kafka = stack.kafka_as("upstream")
        async with Upstream(upstream_kafka, keyring=load_keyring(), observer=stack.kafka_settings) as upstream:
            demo_run = Demo(upstream, board)
            org = demo_run.plan.organizations[0]
            console.print(
                f"read {board.label(org)} over HTTP: {_read_hint(stack, org)}", highlight=False, soft_wrap=True
            )
            await demo_run.run(stop)

    tasks = [asyncio.create_task(read(), name="reading the topics")]
    try:
        try:
            await asyncio.wait_for(following.wait(), timeout=30)
        except TimeoutError:
            kafka = stack.kafka_settings.bootstrap_servers
            raise StackError(f"could not read the topics at {kafka} within 30s") from None
        if demo:
            tasks.append(asyncio.create_task(play(), name="the demo"))
        if not stack.not_installed():
            # The overview is the services' current state, not on any topic: read as a dashboard would.
            ports = {name: stack.settings.http_port(name) for name in PARTS}
            reading = poll_overviews(lambda: board.organizations, board.overviews, ports, key_folder=stack.state_dir)
            tasks.append(asyncio.create_task(reading, name="reading the overviews"))
        footer = "Ctrl-C stops everything (data is kept)" + ("" if demo else " | no demo: waiting for upstream events")
        running = set(stack.running_parts())
        last_parts = loop.time()
        parts = [(p.name, p.running) for p in stack.status() if p.note != "not built yet"]

        def frame() -> Any:
            note = notes[-1] if notes else (demo_run.status if demo_run else "")
            return render(board, parts=parts, footer=f"{footer} | {note}" if note else footer, width=console.width)

        printed, last_status = 0, ""
        live = Live(frame(), console=console, refresh_per_second=4, transient=False) if console.is_terminal else None
        with live or contextlib.nullcontext():
            if live is None:
                console.print(footer)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=refresh_s)
                for task in [t for t in tasks if t.done()]:
                    tasks.remove(task)
                    error = None if task.cancelled() else task.exception()
                    if error is not None:
                        notes.append(f"{task.get_name()} failed: {type(error).__name__}: {error}")
                if loop.time() - last_parts > 2:
                    last_parts = loop.time()
                    parts = [(p.name, p.running) for p in stack.status() if p.note != "not built yet"]
                    for name in sorted(running - {n for n, up in parts if up}):
                        errors.print(f"[red]{name} stopped unexpectedly[/]; see its log", highlight=False)
                        running.discard(name)
                if live is not None:
                    live.update(frame())
                else:
                    status = demo_run.status if demo_run else ""
                    lines = board.take_log() + notes[printed:] + ([status] if status != last_status else [])
                    for line in lines:
                        console.print(line, highlight=False, soft_wrap=True)
                    printed, last_status = len(notes), status
        if live is None:
            console.print(render(board, parts=parts, runs_limit=0, width=console.width))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    sys.exit(app())
