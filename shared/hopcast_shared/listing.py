"""How `hopcast` listing commands print: a rich table as wide as the terminal on a terminal,
and as wide as its rows when piped (rich would squeeze it into 80 columns and wrap each long
cell over lines, which no `grep` or `cut` can use); `--json` prints one object a line."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# Piped: wide enough for any row, so none wraps (a table takes only the width it needs).
_PIPED_WIDTH = 4_096


def console() -> Console:
    if sys.stdout.isatty():
        return Console(width=shutil.get_terminal_size().columns)
    return Console(width=_PIPED_WIDTH, no_color=True)


def print_table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def print_json_lines(objects: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object a line, ASCII only (an original may hold lone surrogates)."""
    for obj in objects:
        typer.echo(json.dumps(obj, default=str))
