"""The `hopcast` command line.

Sub-commands come from the installed parts through the `hopcast.commands` entry-point
group (a typer app each), so shared never imports a service and each service or tool
adds its own commands (`hopcast stack ...`, `hopcast scheduler preview ...`).
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from hopcast_shared.settings import SettingsError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Operate Hopcast.")


_loaded: set[str] = set()


def _load_plugins() -> None:
    for ep in sorted(entry_points(group="hopcast.commands"), key=lambda e: e.name):
        if ep.name in _loaded:
            continue
        _loaded.add(ep.name)
        try:
            sub = ep.load()
        except ImportError as exc:
            # One broken part must not take every other command down with it.
            print(f"hopcast: the `{ep.name}` commands are unavailable: {exc}", file=sys.stderr)
            continue
        app.add_typer(sub, name=ep.name)


def main() -> None:
    _load_plugins()
    try:
        code = app(prog_name="hopcast", standalone_mode=False)
    except typer.TyperException as exc:
        # A usage error (a bad argument, a missing one, an unknown option or command: typer's
        # click exceptions with exit code 2) is one line on stderr saying which and why.
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "hopcast"
        message = " ".join(exc.format_message().split())
        if not message and ctx is not None:  # a group given no command: its help, as before
            print(ctx.get_help(), file=sys.stderr)
        else:
            print(f"{where}: {message}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", 1)) from None
    except typer.Abort:
        print("hopcast: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except SettingsError as exc:
        print(f"hopcast: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)
