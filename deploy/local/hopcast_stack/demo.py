"""The demo of `make run`: two organizations seeded through upstream.events as the web app and
the billing provider would send them, "post now" runs fired in rounds, and a reviewer who
approves (or turns down) the drafts of manual schedules, so every run reaches an outcome.

Each start seeds new organizations (fresh ids): a demo never depends on what an earlier one
left in the databases, and the outcomes it shows are its own.

- Northwind Roasters (GROWTH plan, 1000 credits): the brand Northwind Coffee with accounts on
  Mastodon, Bluesky, LinkedIn and X, an autopilot schedule on three platforms and a manual
  one; the brand Northwind Bakery shares the Mastodon account, posts to Threads where it has no
  account (PARTIALLY_PUBLISHED), and has the same text submitted twice (SKIPPED_DUPLICATE).
- Lumen Yoga Studio (a 10-credit trial, no plan): Instagram, Facebook and Bluesky; an autopilot
  and a manual schedule that spend the trial until runs end INSUFFICIENT_CREDITS.

The coffee's and the studio's materials have a picture with alt text (`demo_media.py`): their
posts carry an image on Bluesky and Instagram, and the live view marks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hopcast_shared.contract import Envelope
from hopcast_stack.demo_media import media_of
from hopcast_stack.upstream import Upstream, upstream_event
from hopcast_stack.view import Board, RunView

log = logging.getLogger(__name__)
SOURCE = "upstream/demo"

# Every organization, brand, account, material and schedule of the demo, as data.
ORGANIZATIONS: list[dict[str, Any]] = [
    {
        "name": "Northwind Roasters",
        "subscription": {"plan": "GROWTH", "credits_total": 1000},
        "grants": [],
        "accounts": [
            {"platform": "MASTODON", "handle": "@northwind@mastodon.social", "api_base_url": "https://mastodon.social"},
            {
                "platform": "BLUESKY",
                "handle": "northwind.bsky.social",
                "external_account_id": "did:plc:northwinddemo",
                "api_base_url": "https://bsky.social",
            },
            {"platform": "LINKEDIN", "handle": "Northwind Roasters"},
            {"platform": "TWITTER", "handle": "@northwindcoffee"},
        ],
        "brands": [
            {
                "name": "Northwind Coffee",
                "timezone": "America/New_York",
                "content_pillars": [
                    {"name": "brewing tips", "percentage": 40},
                    {"name": "behind the scenes", "percentage": 30},
                    {"name": "sustainability", "percentage": 30},
                ],
                "tone": ["warm", "curious", "unpretentious"],
                "target_audience": "Home baristas who want a better cup without the jargon",
                "language_rules": {
                    "words_to_use": ["fresh", "roast", "origin"],
                    "words_to_avoid": ["cheap", "artisanal"],
                    "emoji_usage": "sparingly",
                    "hashtag_style": "lowercase",
                    "cta_style": "soft",
                },
                "default_hashtags": ["#coffee", "#northwind"],
                "max_uses": 3,
                "links": {"MASTODON": True, "BLUESKY": True, "LINKEDIN": True, "TWITTER": True},
                "materials": [
                    (
                        "brewing tips",
                        "Grind right before you brew",
                        "Ground coffee loses most of its aroma within fifteen minutes. Grind just before brewing "
                        "and your morning cup tastes like the bag smelled when you opened it.",
                    ),
                    (
                        "brewing tips",
                        "The 1:16 ratio",
                        "Start with one gram of coffee for every sixteen grams of water, then adjust by taste. "
                        "Weighing beats scoops every single time.",
                    ),
                    (
                        "behind the scenes",
                        "Tuesday is roast day",
                        "Every Tuesday Ana fires up the drum roaster at six. Each batch is cupped before it is "
                        "bagged, and nothing ships more than a week after roasting.",
                    ),
                    (
                        "behind the scenes",
                        "Meet our green buyer",
                        "Tomás visits the farms we buy from twice a year. He tastes hundreds of samples to find "
                        "the dozen lots that make it into our bags.",
                    ),
                    (
                        "sustainability",
                        "Compostable bags",
                        "Our bags are now fully compostable, valve included. Drop them in your green bin once "
                        "the last beans are gone.",
                    ),
                    (
                        "sustainability",
                        "Paying above fair trade",
                        "We pay our partner farms forty percent above the fair trade minimum, and we publish "
                        "every price we pay on our website.",
                    ),
                ],
                "schedules": [
                    {
                        "name": "Morning autopilot",
                        "times": ["08:30"],
                        "days_of_week": [1, 2, 3, 4, 5],
                        "platforms": ["MASTODON", "BLUESKY", "LINKEDIN"],
                        "material_strategy": "round_robin",
                        "generation_mode": "autopilot",
                    },
                    {
                        "name": "Launch posts (manual)",
                        "times": ["12:00"],
                        "days_of_week": [2, 4],
                        "platforms": ["TWITTER", "LINKEDIN"],
                        "material_strategy": "pillar_balanced",
                        "generation_mode": "manual",
                    },
                ],
            },
            {
                "name": "Northwind Bakery",
                "timezone": "America/New_York",
                "content_pillars": [{"name": "fresh bakes", "percentage": 100}],
                "tone": ["cosy"],
                "target_audience": "Neighbours who stop by on the way to work",
                "language_rules": {
                    "words_to_use": ["fresh", "warm"],
                    "words_to_avoid": ["cheap"],
                    "emoji_usage": "moderate",
                    "hashtag_style": "lowercase",
                    "cta_style": "direct",
                },
                "default_hashtags": ["#bakery"],
                # Once each: the second run meets only the copy, the duplicate check skips it.
                "max_uses": 1,
                "links": {"MASTODON": False},
                "materials": [
                    (
                        "fresh bakes",
                        "Sourdough Saturdays",
                        "Our sourdough rises for thirty hours before it meets the oven. Loaves come out at seven "
                        "every Saturday and are usually gone by ten.",
                    ),
                    # The same text, submitted again by a teammate: the duplicate check skips it.
                    (
                        "fresh bakes",
                        "Sourdough Saturdays (again)",
                        "Our sourdough rises for thirty hours before it meets the oven. Loaves come out at seven "
                        "every Saturday and are usually gone by ten.",
                    ),
                ],
                "schedules": [
                    {
                        "name": "Bakery specials",
                        "times": ["07:00"],
                        "days_of_week": [6],
                        # No Threads account: that platform fails, Mastodon goes out.
                        "platforms": ["MASTODON", "THREADS"],
                        "material_strategy": "round_robin",
                        "generation_mode": "autopilot",
                    }
                ],
            },
        ],
    },
    {
        "name": "Lumen Yoga Studio",
        "subscription": None,
        "grants": [{"amount": 10, "reason": "trial credits"}],
        "accounts": [
            {"platform": "INSTAGRAM", "handle": "@lumen.yoga"},
            {"platform": "FACEBOOK", "handle": "Lumen Yoga Studio"},
            {
                "platform": "BLUESKY",
                "handle": "lumenyoga.bsky.social",
                "external_account_id": "did:plc:lumendemo",
                "api_base_url": "https://bsky.social",
            },
        ],
        "brands": [
            {
                "name": "Lumen Yoga",
                "timezone": "Europe/Berlin",
                "content_pillars": [
                    {"name": "practice tips", "percentage": 50},
                    {"name": "community", "percentage": 30},
                    {"name": "classes", "percentage": 20},
                ],
                "tone": ["calm", "encouraging"],
                "target_audience": "Busy people who want ten quiet minutes a day",
                "language_rules": {
                    "words_to_use": ["breathe", "gentle"],
                    "words_to_avoid": ["burn", "extreme"],
                    "emoji_usage": "none",
                    "hashtag_style": "camelcase",
                    "cta_style": "invitational",
                },
                "default_hashtags": ["#yoga", "#lumenYoga"],
                "max_uses": None,
                "links": {"INSTAGRAM": True, "FACEBOOK": True, "BLUESKY": True},
                "materials": [
                    (
                        "practice tips",
                        "Three breaths before you start",
                        "Before your first pose, take three slow breaths through the nose. It tells your body the "
                        "practice has begun and your mind that it can slow down.",
                    ),
                    (
                        "practice tips",
                        "Blocks are not cheating",
                        "A yoga block brings the floor closer to you. Using one keeps your back long and makes "
                        "the pose work where it should.",
                    ),
                    (
                        "community",
                        "Sunday tea after class",
                        "After the Sunday morning flow we put the kettle on. Stay for a cup of ginger tea and "
                        "meet the people you have been breathing next to all year.",
                    ),
                    (
                        "classes",
                        "New evening class",
                        "Starting next month: a gentle forty-five minute class on Wednesday evenings, made for "
                        "unwinding after work. Mats are provided.",
                    ),
                    (
                        "community",
                        "Teacher spotlight: Mira",
                        "Mira has taught at Lumen for six years. Her slow flow on Fridays is the most booked "
                        "class we have, and her playlists are legendary.",
                    ),
                ],
                "schedules": [
                    {
                        "name": "Daily inspiration",
                        "times": ["07:15"],
                        "days_of_week": [0, 1, 2, 3, 4, 5, 6],
                        "platforms": ["INSTAGRAM", "FACEBOOK"],
                        "material_strategy": "random",
                        "generation_mode": "autopilot",
                    },
                    {
                        "name": "Class announcements (manual)",
                        "times": ["18:00"],
                        "days_of_week": [1],
                        "platforms": ["FACEBOOK", "BLUESKY", "INSTAGRAM"],
                        "material_strategy": "weighted",
                        "generation_mode": "manual",
                    },
                ],
            }
        ],
    },
]


@dataclass
class DemoSchedule:
    schedule_id: str
    organization_id: str
    name: str
    manual: bool
    triggers: int = 0


@dataclass
class DemoPlan:
    """The demo's events, with fresh ids, and the labels the live view shows for them."""

    events: list[Envelope] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    organizations: list[str] = field(default_factory=list)
    schedules: list[DemoSchedule] = field(default_factory=list)


def build_plan(upstream: Upstream, *, now: datetime | None = None) -> DemoPlan:
    """Every upstream event of the demo, in an order that makes sense for each organization
    (it is also the order they keep: one organization's events share a partition)."""
    now = now or datetime.now(UTC)
    plan = DemoPlan()
    for org_spec in ORGANIZATIONS:
        org = str(uuid.uuid4())
        plan.organizations.append(org)
        plan.names[org] = org_spec["name"]

        def event(type_name: str, org: str = org, **data: Any) -> Envelope:
            return upstream_event(type_name, org, source=SOURCE, **data)

        plan.events.append(event("OrganizationCreated", organization_id=org, name=org_spec["name"]))
        if org_spec["subscription"]:
            plan.events.append(
                event(
                    "SubscriptionActivated",
                    subscription_id=str(uuid.uuid4()),
                    period_start=_rfc3339(now - timedelta(days=1)),
                    period_end=_rfc3339(now + timedelta(days=29)),
                    **org_spec["subscription"],
                )
            )
        for grant in org_spec["grants"]:
            plan.events.append(event("CreditsGranted", grant_id=str(uuid.uuid4()), **grant))
        accounts: dict[str, str] = {}
        for account in org_spec["accounts"]:
            account_id = accounts[account["platform"]] = str(uuid.uuid4())
            plan.events.append(
                event(
                    "SocialAccountConnected",
                    social_account_id=account_id,
                    platform=account["platform"],
                    handle=account["handle"],
                    external_account_id=account.get("external_account_id"),
                    api_base_url=account.get("api_base_url"),
                    access_token=upstream.encrypt_token(
                        f"demo-{account['platform'].lower()}-{uuid.uuid4().hex}",
                        organization_id=org,
                        social_account_id=account_id,
                    ),
                    refresh_token=upstream.encrypt_token(
                        f"demo-refresh-{uuid.uuid4().hex}", organization_id=org, social_account_id=account_id
                    ),
                    token_expires_at=_rfc3339(now + timedelta(days=60)),
                    tokens_issued_at=_rfc3339(now),
                    is_active=True,
                )
            )
        for brand_spec in org_spec["brands"]:
            brand = str(uuid.uuid4())
            plan.names[brand] = brand_spec["name"]
            profile = {k: v for k, v in brand_spec.items() if k not in {"links", "materials", "schedules", "max_uses"}}
            plan.events.append(event("BrandProfileCreated", brand_profile_id=brand, **profile))
            for platform, is_default in brand_spec["links"].items():
                plan.events.append(
                    event(
                        "BrandAccountLinked",
                        brand_profile_id=brand,
                        social_account_id=accounts[platform],
                        is_default=is_default,
                    )
                )
            for pillar, title, body in brand_spec["materials"]:
                plan.events.append(
                    event(
                        "MaterialSubmitted",
                        material_id=str(uuid.uuid4()),
                        brand_profile_id=brand,
                        type="TEXT",
                        title=title,
                        body=body,
                        media=media_of(title),
                        content_pillar=pillar,
                        max_uses=brand_spec["max_uses"],
                    )
                )
            for schedule_spec in brand_spec["schedules"]:
                schedule = str(uuid.uuid4())
                name = schedule_spec["name"]
                plan.names[schedule] = f"{brand_spec['name']}: {name}"
                plan.schedules.append(
                    DemoSchedule(schedule, org, plan.names[schedule], schedule_spec["generation_mode"] == "manual")
                )
                plan.events.append(
                    event(
                        "ScheduleCreated",
                        schedule_id=schedule,
                        brand_profile_id=brand,
                        timezone=brand_spec["timezone"],
                        missed_run_policy="SKIP",
                        is_active=True,
                        **{k: v for k, v in schedule_spec.items() if k != "name"},
                    )
                )
    return plan


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Demo:
    """Seeds the plan, fires rounds of "post now" runs and reviews manual drafts.

    The reviewer approves a draft a few seconds after its debit (a person reading it), and
    turns down every third one, so REJECTED (with its refund) shows too. It only reviews the
    demo's own organizations.
    """

    def __init__(
        self,
        upstream: Upstream,
        board: Board,
        *,
        rounds: int = 3,
        round_interval_s: float = 12.0,
        review_delay_s: float = 3.0,
    ) -> None:
        self.upstream = upstream
        self.board = board
        self.rounds = rounds
        self.round_interval_s = round_interval_s
        self.review_delay_s = review_delay_s
        self.plan = build_plan(upstream)
        self.board.names.update(self.plan.names)
        self.reviewed: dict[str, str] = {}
        self.rounds_fired = 0
        self.seeded = False

    async def seed(self, *, within: float = 60.0) -> None:
        """Send every fact, then wait until all four services have read them (no run may go
        before its brand's materials, credits and accounts have landed)."""
        await self.upstream.send_all(self.plan.events)
        await self.upstream.wait_consumed(within=within)
        self.seeded = True

    async def fire_round(self) -> None:
        """One "post now" (ScheduleTriggerRequested) per demo schedule."""
        triggers = []
        for schedule in self.plan.schedules:
            schedule.triggers += 1
            triggers.append(
                upstream_event(
                    "ScheduleTriggerRequested",
                    schedule.organization_id,
                    source=SOURCE,
                    schedule_id=schedule.schedule_id,
                )
            )
        await self.upstream.send_all(triggers)
        self.rounds_fired += 1

    def _ours(self, run: RunView) -> bool:
        return run.organization_id in self.plan.organizations

    async def review(self) -> list[tuple[str, str]]:
        """Approve or reject what has waited for approval long enough; returns (pending post, decision)."""
        decisions = []
        for run in list(self.board.runs.values()):
            if not (self._ours(run) and run.awaiting_approval and run.pending_post_id):
                continue
            if run.pending_post_id in self.reviewed or run.seconds < self.review_delay_s:
                continue
            decision = "PendingPostRejected" if len(self.reviewed) % 3 == 2 else "PendingPostApproved"
            self.reviewed[run.pending_post_id] = decision
            await self.upstream.send(
                upstream_event(decision, run.organization_id, source=SOURCE, pending_post_id=run.pending_post_id)
            )
            decisions.append((run.pending_post_id, decision))
        return decisions

    def runs(self) -> Iterator[RunView]:
        """The runs of the demo's schedules seen so far."""
        ours = {s.schedule_id for s in self.plan.schedules}
        return (r for r in self.board.runs.values() if r.schedule_id in ours)

    def triggered(self) -> int:
        return sum(s.triggers for s in self.plan.schedules)

    def finished(self) -> bool:
        """Every round fired and every run it started (at least that many) has its outcome."""
        runs = list(self.runs())
        return self.rounds_fired == self.rounds and len(runs) >= self.triggered() and all(r.done for r in runs)

    @property
    def status(self) -> str:
        """One line on where the demo is, for the view's footer."""
        if not self.seeded:
            return "demo: seeding two organizations through upstream.events..."
        if not self.finished():
            return f"demo: {self.rounds_fired} of {self.rounds} rounds of 'post now' runs fired"
        return (
            f"demo: the {self.triggered()} runs it fired all have an outcome; the schedules keep running at their times"
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Seed, fire the rounds, and keep reviewing until `stop` is set."""
        await self.seed()
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while not stop.is_set():
            if self.rounds_fired < self.rounds and loop.time() >= next_round:
                await self.fire_round()
                next_round = loop.time() + self.round_interval_s
            await self.review()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
