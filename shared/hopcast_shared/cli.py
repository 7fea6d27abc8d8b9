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


def _load_plugins() -> None:
    for ep in sorted(entry_points(group="hopcast.commands"), key=lambda e: e.name):
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
        app()
    except SettingsError as exc:
        print(f"hopcast: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
