"""`hopcast stack status --json`: one JSON object a line, one per part of the stack, for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hopcast_stack.cli import app


def test_status_json_is_one_object_a_line_per_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))  # a stack that never ran
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    parts = [json.loads(line) for line in result.output.splitlines()]
    assert {p["part"] for p in parts} >= {"kafka", "postgres", "scheduler", "content", "billing", "publisher"}
    assert all(p["running"] is False and p["pid"] is None for p in parts)
    assert all(set(p) == {"part", "running", "pid", "address", "log", "note"} for p in parts)
