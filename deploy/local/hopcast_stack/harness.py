"""The end-to-end harness: a `Dashboard` that records every message of the outbound topics (what a
dashboard reads) and `Tenant`, an organization of a test that acts as upstream systems do
(facts on upstream.events, built from the contract's examples with fresh ids). Used by
tests/e2e against the services `TestStack.start_services()` runs; nothing here reads a database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hopcast_shared.contract import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.testing import eventually
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, DLQ_TOPICS, PUBLISHER
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Upstream
from hopcast_stack.view import Board, Message

T = TypeVar("T")

# What a dashboard reads (scheduler.events is the services' own business).
OUTBOUND = (CONTENT, BILLING, PUBLISHER, ANALYTICS, *DLQ_TOPICS)


class Dashboard:
    """Every message of the outbound topics since the services started, in arrival order, and the
    live view's Board over them."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.board = Board()

    def add(self, message: Message) -> None:
        self.messages.append(message)
        self.board.apply(message)

    def events(
        self,
        type_name: str | None = None,
        *,
        run: str | None = None,
        org: str | None = None,
        topic: str | None = None,
    ) -> list[dict[str, Any]]:
        """The envelopes seen, filtered by type, run (run_id or correlation id), organization, topic."""
        return [m.value for m in self.messages_of(type_name, run=run, org=org, topic=topic)]

    def messages_of(
        self,
        type_name: str | None = None,
        *,
        run: str | None = None,
        org: str | None = None,
        topic: str | None = None,
    ) -> list[Message]:
        found = []
        for m in self.messages:
            v = m.value
            if type_name is not None and v.get("type") != type_name:
                continue
            if topic is not None and m.topic != topic:
                continue
            if org is not None and v.get("organizationid") != org:
                continue
            if run is not None and run not in ((v.get("data") or {}).get("run_id"), v.get("correlationid")):
                continue
            found.append(m)
        return found

    def dead_letters(self) -> list[dict[str, Any]]:
        return [m.value for m in self.messages if m.topic.endswith(".dlq")]

    async def wait(self, check: Callable[[], T], *, within: float = 30.0) -> T:
        async def probe() -> T:
            return check()

        return await eventually(probe, within=within, interval=0.1)

    async def outcome(self, run_id: str, *, within: float = 30.0) -> str:
        """The run's outcome, once its ScheduleRunCompleted arrived."""
        [completed] = await self.wait(lambda: self.events("ScheduleRunCompleted", run=run_id), within=within)
        return str(completed["data"]["outcome"])

    async def settle(self, seconds: float = 1.0) -> None:
        """Give a wrong extra event time to show up before asserting there is none."""
        await asyncio.sleep(seconds)

    def runs_of_schedule(self, schedule_id: str) -> list[str]:
        """Run ids of a schedule in the order their first outbound event arrived."""
        runs: list[str] = []
        for v in self.events(topic=CONTENT):
            data = v.get("data") or {}
            if data.get("schedule_id") == schedule_id and data.get("run_id") not in runs:
                runs.append(data["run_id"])
        return runs


def quiet_days() -> list[int]:
    """A day of the week (0 = Sunday) that is neither today nor tomorrow in any time zone: a
    schedule on it never fires by the clock during a test, only when triggered."""
    return [(datetime.now(UTC).isoweekday() % 7 + 3) % 7]


class Tenant:
    """One organization of a test, built from the contract's examples with fresh ids."""

    def __init__(self, upstream: Upstream, dashboard: Dashboard, hopcast: ServiceSet) -> None:
        self.upstream = upstream
        self.dashboard = dashboard
        self.hopcast = hopcast
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.accounts: dict[str, str] = {}
        self.materials: list[str] = []

    def event(self, type_name: str, **changes: Any) -> Envelope:
        return example_event(type_name, organization_id=self.org, time=datetime.now(UTC), **changes)

    async def send(self, *events: Envelope, **headers: str) -> None:
        for event in events:
            await self.upstream.send(event, headers=headers)

    async def create(
        self,
        *,
        credits: int | None = 300,
        accounts: tuple[str, ...] = ("MASTODON", "BLUESKY"),
        materials: tuple[str, ...] = (),
    ) -> None:
        """The organization, its brand, a subscription with `credits` (None: none), an account per
        platform linked as the brand's default, and materials (each usable once)."""
        now = datetime.now(UTC)
        events = [self.event("OrganizationCreated"), self.event("BrandProfileCreated", brand_profile_id=self.brand)]
        if credits is not None:
            events.append(
                self.event(
                    "SubscriptionActivated",
                    subscription_id=str(uuid.uuid4()),
                    plan="STARTER",
                    credits_total=credits,
                    period_start=(now - timedelta(days=1)).isoformat(),
                    period_end=(now + timedelta(days=29)).isoformat(),
                )
            )
        for platform in accounts:
            account = self.accounts[platform] = str(uuid.uuid4())
            events.append(
                self.event(
                    "SocialAccountConnected",
                    social_account_id=account,
                    platform=platform,
                    handle=f"@e2e-{platform.lower()}",
                    access_token=self.upstream.encrypt_token(
                        f"token-{uuid.uuid4().hex}", organization_id=self.org, social_account_id=account
                    ),
                    refresh_token=None,
                    token_expires_at=(now + timedelta(days=30)).isoformat(),
                )
            )
            events.append(
                self.event(
                    "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=account, is_default=True
                )
            )
        for body in materials:
            events.append(self.material_event(body))
        await self.send(*events)

    def material_event(self, body: str, **changes: Any) -> Envelope:
        material = str(uuid.uuid4())
        self.materials.append(material)
        return self.event(
            "MaterialSubmitted",
            material_id=material,
            brand_profile_id=self.brand,
            body=body,
            max_uses=1,
            **changes,
        )

    async def schedule(self, platforms: list[str], *, mode: str = "autopilot", **changes: Any) -> str:
        """A schedule that never fires by the clock during the test (only when triggered)."""
        schedule = str(uuid.uuid4())
        await self.send(
            self.event(
                "ScheduleCreated",
                schedule_id=schedule,
                brand_profile_id=self.brand,
                timezone="UTC",
                times=["03:00"],
                days_of_week=quiet_days(),
                platforms=platforms,
                generation_mode=mode,
                **changes,
            )
        )
        return schedule

    async def landed(self) -> None:
        """Wait until every service has read what this test sent upstream (topics are not ordered
        with each other: a run must not reach content before its brand's materials).

        Up to a minute: consumer groups are the services' names whatever the topic prefix, so
        when a test's world of its own stops its services (tests/e2e/test_run_deadlines.py),
        this world's consumers of the same groups rebalance with them first; one CI run saw
        the scheduler's group take over 30 s to settle after such a stop."""
        await self.upstream.wait_consumed(within=60)

    async def trigger(self, schedule: str, **headers: str) -> str:
        """Post now; returns the new run's id once its first outbound event shows it."""
        before = set(self.dashboard.runs_of_schedule(schedule))
        await self.send(self.event("ScheduleTriggerRequested", schedule_id=schedule), **headers)
        new = await self.dashboard.wait(
            lambda: [r for r in self.dashboard.runs_of_schedule(schedule) if r not in before]
        )
        assert len(new) == 1, f"one trigger started {len(new)} runs"
        return new[0]

    async def credits(self) -> int:
        """The balance, as billing's HTTP route tells."""
        status, body = await self.hopcast.get_json(
            "billing", f"/organizations/{self.org}/credits", organization=self.org
        )
        assert status == 200, body
        return int(body["balance"])
