"""The live view shows what became of a manual-mode draft: an edit refused or accepted, and a
draft that expired undecided (its run EXPIRED, its debit refunded)."""

from __future__ import annotations

import json
import uuid

from rich.console import Console

from hopcast_shared.contract import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_stack.view import Board, Message, render

ORG = str(uuid.uuid4())


def message(topic: str, event: Envelope) -> Message:
    return Message(topic, json.loads(event.to_json()), {})


def test_an_expired_draft_shows_expired_with_its_refund() -> None:
    board = Board()
    run_id, pending = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {"run_id": run_id, "pending_post_id": pending}
    common = {"organization_id": ORG, "correlation_id": run_id}
    board.apply(message("content.events", example_event("PendingPostCreated", requires_approval=True, **ids, **common)))
    board.apply(message("billing.events", example_event("CreditsDebited", amount=3, **ids, **common)))
    assert board.runs[run_id].awaiting_approval

    refused = example_event("PendingPostEditRefused", reason="TEXT_BREAKS_RULE", **ids, **common)
    board.apply(message("content.events", refused))
    assert board.runs[run_id].stage == "edit refused: TEXT_BREAKS_RULE"

    board.apply(message("publisher.events", example_event("PendingPostExpired", **ids, **common)))
    assert board.runs[run_id].stage == "expired: no decision in time"
    board.apply(message("billing.events", example_event("CreditsRefunded", amount=3, **ids, **common)))
    completed = example_event("ScheduleRunCompleted", run_id=run_id, outcome="EXPIRED", **common)
    board.apply(message("analytics.events", completed))

    run = board.runs[run_id]
    assert (run.outcome, run.stage, run.refunded, run.completions) == ("EXPIRED", "EXPIRED", 3, 1)
    assert board.organizations[ORG].outcomes["EXPIRED"] == 1
    console = Console(width=160, record=True)
    console.print(render(board))
    assert "EXPIRED" in console.export_text()
