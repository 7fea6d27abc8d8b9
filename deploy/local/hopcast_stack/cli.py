"""`hopcast stack ...`: run the local stack (what `make run`, `make up`, `make infra-up`, `make env`
and `make status` call). Every command is idempotent; a failure exits non-zero with the tail of
the failing part's log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

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
def env() -> None:
    """Print the connection settings of the local stack (KEY=value lines, ready for `export`)."""
    for key, value in _stack().env().items():
        # Plain print: no rich markup or wrapping, the output is meant for scripts.
        print(f"{key}={value}")


@app.command()
def status() -> None:
    """What runs, with pids, addresses and logs."""
    console.print(_status_table(_stack()))


def _status_table(stack: Stack) -> Table:
    table = Table(title=f"Hopcast local stack ({stack.state_dir})", title_justify="left")
    for column in ("part", "state", "pid", "address", "log"):
        table.add_column(column)
    for part in stack.status():
        state = "[green]running[/]" if part.running else f"[dim]{part.note or 'stopped'}[/]"
        table.add_row(part.name, state, str(part.pid or ""), part.address, part.log)
    return table


@app.command()
def run() -> None:
    """`make run`: bring everything up, show where it runs, and stop it all on Ctrl-C or SIGTERM."""
    stack = _stack()
    try:
        with stack.locked():
            _print_report(_run_async(stack.up))
        console.print(_status_table(stack))
        console.print("[bold]Connection settings[/] (also `make env`):")
        for key, value in stack.env().items():
            console.print(f"  {key}={value}", highlight=False, soft_wrap=True)
        missing = stack.not_installed()
        if missing and not stack.services:
            console.print(
                "[yellow]The four services are not built yet, so only the infrastructure runs.[/] "
                "Kafka and PostgreSQL are ready for them."
            )
        elif missing:
            console.print(f"[yellow]Not built yet:[/] {', '.join(missing)}.")
        console.print("Press Ctrl-C to stop everything (data is kept).")
        asyncio.run(_watch(stack))
    finally:
        console.print("stopping...")
        with stack.locked():
            try:
                stopped = stack.down()
            except StackError as exc:
                raise _fail(exc) from None
        console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


async def _watch(stack: Stack, interval_s: float = 2.0) -> None:
    """Wait for Ctrl-C or SIGTERM; meanwhile say when a part stops on its own (with its log's path)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = set(stack.running_parts())
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        now = {p.name: p for p in stack.status()}
        for name in sorted(running - {n for n, p in now.items() if p.running}):
            errors.print(f"[red]{name} stopped unexpectedly[/]; see {now[name].log}", highlight=False)
            running.discard(name)


if __name__ == "__main__":
    sys.exit(app())
