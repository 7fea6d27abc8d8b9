"""The demo of `make run`, against the suite's services: its seed goes through upstream.events,
every run it fires reaches an outcome, the reviewer settles every manual draft, and the live
view's board agrees with billing about the credits left."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from hopcast_stack.demo import Demo
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Upstream
from hopcast_stack.view import MEDIA_MARK, Board, follow, render

pytestmark = pytest.mark.e2e


async def test_the_demo_seeds_fires_and_every_run_reaches_an_outcome(hopcast: ServiceSet) -> None:
    board = Board()
    following = asyncio.Event()

    async def read() -> None:
        async for message in follow(hopcast.kafka, ready=following):
            board.apply(message)

    reader = asyncio.create_task(read())
    stop = asyncio.Event()
    try:
        await asyncio.wait_for(following.wait(), timeout=30)
        async with Upstream(hopcast.kafka_as("upstream"), keyring=hopcast.keyring, observer=hopcast.kafka) as upstream:
            demo = Demo(upstream, board, rounds=3, round_interval_s=2.0, review_delay_s=0.5)
            playing = asyncio.create_task(demo.run(stop))

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while not demo.finished():
                if playing.done():
                    playing.result()  # a failed seed fails here, with its error
                if loop.time() > deadline:
                    left = [(r.run_id[:8], board.label(r.schedule_id), r.stage) for r in demo.runs() if not r.done]
                    raise AssertionError(f"runs without an outcome after 90s: {left}")
                await asyncio.sleep(0.2)
            stop.set()
            await playing
    finally:
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    runs = list(demo.runs())
    # At least the runs it fired (a schedule may also fire by the clock, at its own time).
    assert len(runs) >= demo.triggered() == 3 * len(demo.plan.schedules)
    assert all(run.completions == 1 for run in runs)
    outcomes = Counter(run.outcome for run in runs)
    # What the demo is built to show (see hopcast_stack.demo): each kind of ending at least once.
    for outcome in ("PUBLISHED", "PARTIALLY_PUBLISHED", "SKIPPED_DUPLICATE", "INSUFFICIENT_CREDITS", "REJECTED"):
        assert outcomes[outcome] >= 1, outcomes
    # Every manual draft that was paid for got a decision.
    manual = {s.schedule_id for s in demo.plan.schedules if s.manual}
    assert {r.pending_post_id for r in runs if r.schedule_id in manual and r.debited} == set(demo.reviewed)
    # The board's credits are billing's.
    roasters, yoga = demo.plan.organizations
    for org in (roasters, yoga):
        status, body = await hopcast.get_json("billing", f"/organizations/{org}/credits", organization=org)
        assert status == 200 and board.organizations[org].credits == body["balance"], (org, body)
    assert board.organizations[yoga].credits is not None and board.organizations[yoga].credits < 3
    assert board.dead_letters == []
    # And it draws, with the demo's names.
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render(board))
    text = console.export_text()
    assert "Northwind Roasters" in text and "Lumen Yoga Studio" in text and "INSUFFICIENT_CREDITS" in text
    # Posts with an image on Bluesky and on Instagram (issue 18), marked as such.
    assert board.published_with_media["BLUESKY"] >= 1 and board.published_with_media["INSTAGRAM"] >= 1
    assert f"{MEDIA_MARK} [1 image]" in text
