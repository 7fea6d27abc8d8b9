"""The AsyncAPI documents in docs/asyncapi are what the code says: each service's interface
matches its wiring (topics consumed, types handled, types constructed to emit), and the
checked-in documents match a fresh export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hopcast_shared.contract import EVENT_TYPES
from hopcast_shared.contract.asyncapi import ServiceInterface, installed_interfaces, render_asyncapi
from hopcast_shared.contract.cli import app
from hopcast_shared.crypto import Keyring
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.topics import UPSTREAM

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "asyncapi"
INTERFACES = {i.name: i for i in installed_interfaces()}


def _definition(name: str) -> ServiceDefinition:
    if name == "scheduler":
        from hopcast_scheduler.bootstrap import definition as scheduler

        return scheduler()
    if name == "content":
        from hopcast_content.bootstrap import definition as content

        return content()
    if name == "billing":
        from hopcast_billing.bootstrap import definition as billing

        return billing()
    from hopcast_publisher.bootstrap import definition as publisher

    return publisher(adapters={}, keyring=Keyring({1: bytes(32)}))


def test_every_service_has_an_interface() -> None:
    assert sorted(INTERFACES) == ["billing", "content", "publisher", "scheduler"]


@pytest.mark.parametrize("name", ["scheduler", "content", "billing", "publisher"])
def test_the_interface_is_the_wiring(name: str) -> None:
    interface, definition = INTERFACES[name], _definition(name)
    assert tuple(definition.consumes) == interface.consumes
    assert sorted(definition.handlers) == sorted(interface.handles)


@pytest.mark.parametrize("name", ["scheduler", "content", "billing", "publisher"])
def test_the_interface_emits_what_the_code_constructs(name: str) -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "services" / name / f"hopcast_{name}").rglob("*.py"))
    outbound = [t for t, spec in EVENT_TYPES.items() if spec.topic != UPSTREAM]
    constructed = {t for t in outbound if re.search(rf"\b{t}\(", source)}
    assert constructed == set(INTERFACES[name].emits)


def test_every_internal_event_has_a_producer_and_a_reader() -> None:
    emitted = {t for i in INTERFACES.values() for t in i.emits}
    handled = {t for i in INTERFACES.values() for t in i.handles}
    internal = {t for t, spec in EVENT_TYPES.items() if spec.topic != UPSTREAM}
    assert internal <= emitted
    # Read by no service today: facts for dashboards and upstream systems (an account's
    # refreshed tokens and lost authorization are for upstream). The scheduler reads the
    # run's others for its timeline (GET /runs/{id}).
    assert internal - handled == {"CreditsUsage", "SocialAccountTokensRefreshed", "SocialAccountNeedsReauth"}


def test_an_interface_must_name_contract_types_on_topics_it_reads() -> None:
    with pytest.raises(ValueError, match="NotAnEvent"):
        ServiceInterface("x", "", (UPSTREAM,), ("NotAnEvent",), ())
    with pytest.raises(ValueError, match="ScheduleDue but consumes none"):
        ServiceInterface("x", "", (UPSTREAM,), ("ScheduleDue",), ())


def test_checked_in_documents_match_the_code() -> None:
    fresh = render_asyncapi()
    checked_in = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.json")}
    stale = sorted(n for n in set(fresh) | set(checked_in) if fresh.get(n) != checked_in.get(n))
    assert not stale, f"docs/asyncapi drifted from the code ({stale}); run `make asyncapi` and commit"


def _doc(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render_asyncapi([INTERFACES[name]])[f"{name}.json"])
    return document


def test_the_billing_document_says_what_billing_does() -> None:
    doc = _doc("billing")
    assert doc["asyncapi"] == "3.0.0"
    receive = doc["operations"]["receiveContentEvents"]
    assert receive["action"] == "receive"
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["billing"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in receive["messages"]] == ["PendingPostCreated"]
    send = doc["operations"]["sendBillingEvents"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in send["messages"]] == [
        "CreditsDebited",
        "CreditsDebitRejected",
        "CreditsRefunded",
    ]
    assert doc["channels"]["billingDlq"]["address"] == "billing.dlq"
    debited = doc["components"]["schemas"]["CreditsDebited"]
    assert {"pending_post_id", "run_id", "amount", "balance_after"} <= set(debited["required"])
    # Every $ref resolves inside the document.
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node: Any = doc
        for part in ref.split("/"):
            node = node[part]


def test_the_command_writes_one_document_per_service(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export-asyncapi", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["billing.json", "content.json", "publisher.json", "scheduler.json"]
