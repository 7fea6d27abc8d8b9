"""The JSON Schemas checked in under docs/schemas/ are what the code exports, and the
`hopcast contract` commands work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hopcast_shared.contract import EVENT_TYPES, export_schemas, render_schemas
from hopcast_shared.contract.cli import app
from hopcast_shared.contract.examples import example_data, example_event

DOCS_SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def test_checked_in_schemas_match_the_code(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    fresh = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    checked_in = {p.name: p.read_text(encoding="utf-8") for p in DOCS_SCHEMAS.glob("*.json")}
    stale = sorted(n for n in set(fresh) | set(checked_in) if fresh.get(n) != checked_in.get(n))
    assert not stale, f"docs/schemas drifted from the contract ({stale}); run `make schemas` and commit"


def test_index_lists_every_type_with_its_topics_and_schema() -> None:
    files = render_schemas()
    index = json.loads(files["index.json"])
    assert [t["type"] for t in index["types"]] == list(EVENT_TYPES)
    for entry in index["types"]:
        assert entry["topics"] == list(EVENT_TYPES[entry["type"]].topics)
        schema = json.loads(files[entry["schema"]])
        assert schema["title"] == entry["type"]
        assert schema["x-hopcast-topics"] == entry["topics"]
    assert index["contenttype"] == "application/cloudevents+json"
    envelope = json.loads(files[index["envelope"]])
    assert set(envelope["required"]) == {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "organizationid",
        "data",
    }


def test_schemas_describe_the_rules() -> None:
    files = render_schemas()
    schedule = json.loads(files["ScheduleCreated.json"])["properties"]
    assert schedule["times"]["maxItems"] == 10 and schedule["times"]["uniqueItems"] is True
    assert schedule["missed_run_policy"]["default"] == "ONCE"
    account = json.loads(files["SocialAccountConnected.json"])["properties"]
    assert "pattern" in account["access_token"]


def test_export_removes_files_of_types_that_no_longer_exist(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    index["types"].append({"type": "Gone", "topics": [], "schema": "Gone.json"})
    index["types"].append({"type": "Evil", "topics": [], "schema": "../outside.json"})
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "Gone.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    export_schemas(tmp_path)
    assert not (tmp_path / "Gone.json").exists()
    assert (tmp_path / "notes.txt").exists()
    assert len(list(tmp_path.glob("*.json"))) == len(EVENT_TYPES) + 2


def test_cli_exports_lists_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["export-schemas", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "index.json").exists()

    result = runner.invoke(app, ["types"])
    assert result.exit_code == 0
    assert "PostPublished\tpublisher.events,analytics.events" in result.output

    good = tmp_path / "good.json"
    good.write_bytes(example_event("ScheduleDue").to_json())
    result = runner.invoke(app, ["check", str(good)])
    assert result.exit_code == 0 and result.output.startswith("ok: ScheduleDue")


@pytest.mark.parametrize("token", ["plain-oauth-token-123456"])
def test_cli_check_refuses_without_echoing_secrets(tmp_path: Path, token: str) -> None:
    document = json.loads(example_event("SocialAccountConnected").to_json())
    document["data"] = example_data("SocialAccountConnected", access_token=token)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    result = CliRunner().invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert "refused (data)" in result.output and "access_token" in result.output
    assert token not in result.output
