"""Every `hopcast` command given a bad argument is a usage error: exit 2 and one line on stderr
saying which command and why, never a traceback or a box (scripts read it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import typer

from hopcast_shared import cli


def _commands() -> Iterator[tuple[list[str], bool]]:
    """(path, whether it takes a required argument) of every leaf command."""
    cli._load_plugins()
    root = typer.main.get_command(cli.app)

    def walk(command: object, path: list[str]) -> Iterator[tuple[list[str], bool]]:
        children = getattr(command, "commands", None)
        if children:
            for name, child in sorted(children.items()):
                yield from walk(child, [*path, name])
        else:
            params = getattr(command, "params", [])
            yield path, any(getattr(p, "required", False) and p.param_type_name == "argument" for p in params)

    yield from walk(root, [])


COMMANDS = list(_commands())


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hopcast", *argv])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    return int(ended.value.code or 0), capsys.readouterr().err


def test_there_are_commands_to_check() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"dlq list", "migrate apply", "topics create", "tokens rotate"} <= paths and len(paths) > 20


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_an_unknown_option_is_one_line_and_exit_2(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = _run([*path, "--no-such-option"], capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"hopcast {' '.join(path)}: ") and "--no-such-option" in err


@pytest.mark.parametrize(
    "path", [p for p, needs in COMMANDS if needs], ids=[" ".join(p) for p, needs in COMMANDS if needs]
)
def test_a_missing_argument_is_one_line_and_exit_2(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = _run(path, capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"hopcast {' '.join(path)}: Missing ")


def test_a_bad_value_says_which_and_why(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _run(["dlq", "list", "nobody"], capsys, monkeypatch)
    assert (code, err) == (
        2,
        "hopcast dlq list: Invalid value for 'service': expected one of scheduler, content, billing, publisher\n",
    )


def test_every_listing_command_offers_json_lines() -> None:
    """The listings (`list`, `status`) all take --json, one object a line (each command's own
    tests parse it: dlq and outbox in test_poison_records, topics in test_topics_cli, the stack's
    status in deploy/local/tests/test_status_json.py)."""
    root = typer.main.get_command(cli.app)
    listings = {}
    for group_name, group in getattr(root, "commands", {}).items():
        for name, command in getattr(group, "commands", {}).items():
            if name in ("list", "status"):
                listings[f"{group_name} {name}"] = {opt for p in command.params for opt in getattr(p, "opts", [])}
    assert set(listings) >= {"dlq list", "outbox list", "topics list", "stack status"}
    assert {name for name, opts in listings.items() if "--json" not in opts} == set()
