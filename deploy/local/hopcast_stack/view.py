"""The live view of `make run`: what a dashboard sees by reading the services' topics.

`follow` reads topics (from their end, or their beginning) and yields each message; `Board` is
the projection built from them (runs and their stages, outcomes, credits left per organization,
posts per platform, dead letters); `render` draws a Board with rich. Nothing here asks a service
anything: the topics are the whole truth of the runs. Only each organization's overview (brands,
ready materials, schedules, posts of 30 days, credits by bucket) is the services' current state,
which no topic carries: `hopcast_stack.overview` polls it into `Board.overviews`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, DLQ_TOPICS, PUBLISHER, SCHEDULER
from hopcast_stack.overview import OrganizationOverview

# What a dashboard reads: every topic the services publish to, and the dead letters.
VIEW_TOPICS: tuple[str, ...] = (SCHEDULER, CONTENT, BILLING, PUBLISHER, ANALYTICS, *DLQ_TOPICS)

GOOD_OUTCOMES = frozenset({"PUBLISHED"})
PARTIAL_OUTCOMES = frozenset(
    {"PARTIALLY_PUBLISHED", "SKIPPED_DUPLICATE", "NO_MATERIAL", "REJECTED", "EXPIRED", "ALL_PLATFORMS_LEFT_OUT"}
)
MEDIA_MARK = "🖼"
"""Marks a run whose post carries media (issue 18), beside its platforms."""
_VIDEO_ENDINGS = (".mp4", ".mov", ".webm", ".m4v")


def media_marker(media: Sequence[dict[str, Any]]) -> str:
    """`[1 image]`, `[2 images, 1 video]`: what a post's media are (by type, else URL ending)."""
    videos = sum(
        str(m.get("mime_type") or "").startswith("video/")
        or (not m.get("mime_type") and str(m.get("url", "")).split("?", 1)[0].lower().endswith(_VIDEO_ENDINGS))
        for m in media
    )
    images = len(media) - videos
    parts = [f"{n} {kind}{'s' if n > 1 else ''}" for n, kind in ((images, "image"), (videos, "video")) if n]
    return f"[{', '.join(parts)}]" if parts else ""


@dataclass(frozen=True)
class Message:
    """One message of a followed topic: the topic without its prefix, the JSON value, headers."""

    topic: str
    value: dict[str, Any]
    headers: dict[str, str]


async def follow(
    kafka: KafkaSettings,
    topics: Sequence[str] = VIEW_TOPICS,
    *,
    from_beginning: bool = False,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[Message]:
    """Every message on `topics` (names without the prefix) from their end (or beginning) on,
    as it arrives; no consumer group, so nothing of the services' is touched. `ready` is set
    once the starting positions are fixed (what is sent after that will be seen)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        by_name = {kafka.topic(t): t for t in topics}
        tps = [TopicPartition(full, p) for full in by_name for p in sorted(cluster.partitions_for_topic(full) or ())]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before anything else is sent
            await consumer.position(tp)
        if ready is not None:
            ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    try:
                        value = json.loads(record.value or b"")
                    except ValueError:
                        value = {"type": "(not JSON)"}
                    if not isinstance(value, dict):
                        value = {"type": "(not an object)"}
                    headers = {k: v.decode("latin-1") for k, v in record.headers or ()}
                    yield Message(by_name.get(tp.topic, tp.topic), value, headers)
    finally:
        await consumer.stop()


@dataclass
class RunView:
    """One run (one ScheduleDue) as far as the topics have told."""

    run_id: str
    organization_id: str
    first_seen: float
    schedule_id: str | None = None
    brand_profile_id: str | None = None
    platforms: list[str] = field(default_factory=list)
    stage: str = "due"
    pending_post_id: str | None = None
    requires_approval: bool = False
    debited: int | None = None
    refunded: int = 0
    skip_reason: str | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    """The post's media, as PendingPostCreated names them."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Platforms content left out of the post, with why (a platform that needs media)."""
    platform_results: dict[str, str] = field(default_factory=dict)
    outcome: str | None = None
    completions: int = 0
    completed_at: float | None = None
    trace_ids: set[str] = field(default_factory=set)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def awaiting_approval(self) -> bool:
        return self.requires_approval and self.debited is not None and not self.done and not self.platform_results

    @property
    def seconds(self) -> float:
        return (self.completed_at if self.completed_at is not None else self.clock()) - self.first_seen


@dataclass
class OrganizationView:
    organization_id: str
    credits: int | None = None
    runs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class DeadLetterView:
    consumer: str
    event_type: str
    error_kind: str
    error: str


def trace_id(headers: dict[str, str]) -> str | None:
    """The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`)."""
    parts = headers.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class Board:
    """The dashboard's projection of the topics. `apply(message)` for each message read;
    `names` maps organization, brand and schedule ids to labels (the demo fills it in)."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.names: dict[str, str] = {}
        self.runs: dict[str, RunView] = {}
        self.organizations: dict[str, OrganizationView] = {}
        self.overviews: dict[str, OrganizationOverview] = {}  # polled from the services' reads
        self.published: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.published_with_media: Counter[str] = Counter()
        self.engagement: dict[str, float] = {}
        self.dead_letters: list[DeadLetterView] = []
        self.events = 0
        self._seen: set[str] = set()
        self._log: deque[str] = deque(maxlen=1000)
        self.started = now()
        self.first_outcome_after: float | None = None

    # Reading --------------------------------------------------------------------------------

    def apply(self, message: Message) -> None:
        value = message.value
        if message.topic.endswith(".dlq"):
            self._dead_letter(value)
            return
        event_id = str(value.get("id", ""))
        if event_id in self._seen:  # the same event on two topics (PostPublished), or a redelivery
            return
        self._seen.add(event_id)
        self.events += 1
        kind = str(value.get("type", ""))
        data = value.get("data") or {}
        org = str(value.get("organizationid", ""))
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return
        run_id = data.get("run_id") or value.get("correlationid")
        run = self._run(str(run_id), org) if run_id and kind != "CreditsUsage" else None
        if run is not None:
            tid = trace_id(message.headers)
            if tid:
                run.trace_ids.add(tid)
            for key in ("schedule_id", "brand_profile_id"):
                if data.get(key):
                    setattr(run, key, data[key])
        handler(run, org, data)

    def _run(self, run_id: str, org: str) -> RunView:
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunView(run_id, org, self._now(), clock=self._now)
            self._organization(org).runs += 1
        return run

    def _organization(self, org: str) -> OrganizationView:
        view = self.organizations.get(org)
        if view is None:
            view = self.organizations[org] = OrganizationView(org)
        return view

    def _on_ScheduleDue(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.platforms = list(data.get("platforms") or run.platforms)

    def _on_RunDeadlinePassed(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        # The holder ends it TIMED_OUT next; meanwhile the view says why it is still open.
        self._advance(run, "past its deadline")

    def _on_PendingPostCreated(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.left_out = {str(p.get("platform")): str(p.get("reason")) for p in data.get("platforms_left_out") or ()}
        run.platforms = [*(data.get("platforms") or run.platforms), *run.left_out]
        media = data.get("media")
        run.media = list(media) if media is not None else [{"url": u} for u in data.get("media_urls") or ()]
        run.pending_post_id = data.get("pending_post_id")
        run.requires_approval = bool(data.get("requires_approval"))
        self._advance(run, "drafted")

    def _on_ScheduleRunSkipped(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.skip_reason = data.get("reason")
        self._advance(run, f"skipped: {run.skip_reason}")

    def _on_CreditsDebited(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.debited = int(data.get("amount", 0))
        self._advance(run, "awaiting approval" if run.requires_approval else "publishing")

    def _on_CreditsDebitRejected(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        self._advance(run, f"debit rejected: {data.get('reason')}")

    def _on_PendingPostEditAccepted(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        self._advance(run, "edit accepted")

    def _on_PendingPostEditRefused(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        self._advance(run, f"edit refused: {data.get('reason')}")

    def _on_PendingPostExpired(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        self._advance(run, "expired: no decision in time")

    def _on_CreditsRefunded(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.refunded += int(data.get("amount", 0))

    def _on_PostPublished(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        platform = str(data.get("platform"))
        run.platform_results[platform] = "published"
        self.published[platform] += 1
        if run.media:
            self.published_with_media[platform] += 1
        self._advance(run, "publishing")

    def _on_PostPublishFailed(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        platform = str(data.get("platform"))
        run.platform_results[platform] = str(data.get("reason"))
        self.failed[platform] += 1
        self._advance(run, "publishing")

    def _on_ScheduleRunCompleted(self, run: RunView, org: str, data: dict[str, Any]) -> None:
        run.completions += 1
        if run.outcome is not None:
            return
        run.outcome = str(data.get("outcome"))
        run.completed_at = self._now()
        run.stage = run.outcome
        self._organization(org).outcomes[run.outcome] += 1
        if self.first_outcome_after is None:
            self.first_outcome_after = run.completed_at - self.started
        self._log.append(
            f"run {run.run_id[:8]} {self.label(org)} / {self.label(run.schedule_id)}: {run.outcome}"
            f" in {run.seconds:.1f}s ({self._platforms_text(run)})"
            + (f" {MEDIA_MARK} {media_marker(run.media)}" if run.media else "")
        )

    def _on_CreditsUsage(self, run: RunView | None, org: str, data: dict[str, Any]) -> None:
        # Every change of a balance comes with one, in ledger order (one partition per organization).
        self._organization(org).credits = int(data.get("balance_after", 0))

    def _on_EngagementUpdated(self, run: RunView | None, org: str, data: dict[str, Any]) -> None:
        self.engagement[str(data.get("post_id"))] = float(data.get("engagement_rate", 0.0))

    def _advance(self, run: RunView, stage: str) -> None:
        if not run.done:  # topics are not ordered with each other: a late event never reopens a run
            run.stage = stage

    def _dead_letter(self, value: dict[str, Any]) -> None:
        letter_id = str(value.get("dead_letter_id", ""))
        if letter_id and letter_id in self._seen:
            return
        self._seen.add(letter_id)
        letter = DeadLetterView(
            consumer=str(value.get("consumer", "?")),
            event_type=str(value.get("event_type") or "?"),
            error_kind=str(value.get("error_kind", "?")),
            error=str(value.get("error", "")),
        )
        self.dead_letters.append(letter)
        self._log.append(f"dead letter in {letter.consumer}: {letter.event_type} ({letter.error_kind}) {letter.error}")

    # Questions ------------------------------------------------------------------------------

    def label(self, some_id: str | None) -> str:
        if not some_id:
            return "?"
        return self.names.get(some_id, some_id[:8])

    def in_flight(self) -> list[RunView]:
        return [r for r in self.runs.values() if not r.done]

    def completed(self) -> list[RunView]:
        return [r for r in self.runs.values() if r.done]

    def take_log(self) -> list[str]:
        """The notable changes (runs ended, dead letters) since the last call."""
        lines = list(self._log)
        self._log.clear()
        return lines

    @staticmethod
    def _platforms_text(run: RunView) -> str:
        marks = []
        for platform in run.platforms:
            result = run.platform_results.get(platform)
            if platform in run.left_out:
                result = f"left out: {run.left_out[platform]}"
            mark = "ok" if result == "published" else (result.lower() if result else "…")
            marks.append(f"{platform} {mark}")
        return ", ".join(marks) or "-"


# Drawing -----------------------------------------------------------------------------------

_PLATFORM_STYLE = {"published": "green"}


def _outcome_style(outcome: str | None) -> str:
    if outcome is None:
        return "yellow"
    if outcome in GOOD_OUTCOMES:
        return "bold green"
    if outcome in PARTIAL_OUTCOMES:
        return "dark_orange"
    return "red"


def _platform_cell(run: RunView) -> Text:
    text = Text()
    for i, platform in enumerate(run.platforms):
        if i:
            text.append(" ")
        result = run.platform_results.get(platform)
        if platform in run.left_out:
            text.append(f"{platform} left out", style="dim strike")
        elif result == "published":
            text.append(f"{platform} ✓", style="green")
        elif result:
            text.append(f"{platform} ✗", style="red")
        else:
            text.append(platform, style="dim")
    if run.media:
        text.append(f" {MEDIA_MARK} {media_marker(run.media)}", style="cyan")
    return text


def _runs_table(board: Board, limit: int) -> Table:
    table = Table(title="Runs (newest first)", title_justify="left", expand=True)
    table.add_column("run", no_wrap=True)
    table.add_column("schedule", ratio=3)
    table.add_column("platforms", ratio=3)
    table.add_column("stage / outcome", ratio=2)
    table.add_column("credits", no_wrap=True)
    table.add_column("time", no_wrap=True, justify="right")
    runs = sorted(board.runs.values(), key=lambda r: r.first_seen, reverse=True)
    shown = [r for r in runs if not r.done][:limit]
    shown += [r for r in runs if r.done][: max(0, limit - len(shown))]
    for run in sorted(shown, key=lambda r: r.first_seen, reverse=True):
        credits = "" if run.debited is None else f"-{run.debited}" + (f" +{run.refunded}" if run.refunded else "")
        table.add_row(
            run.run_id[:8],
            board.label(run.schedule_id),
            _platform_cell(run),
            Text(run.stage, style=_outcome_style(run.outcome) if run.done else "yellow"),
            credits,
            f"{run.seconds:.1f}s",
        )
    if not shown:
        table.add_row("", Text("waiting for the first run…", style="dim"), "", "", "", "")
    return table


def _organizations_table(board: Board) -> Table:
    table = Table(title="Organizations", title_justify="left")
    for column in ("organization", "credits left", "runs", "outcomes", "overview"):
        table.add_column(column)
    for org in board.organizations.values():
        outcomes = Text()
        for i, (outcome, count) in enumerate(sorted(org.outcomes.items())):
            if i:
                outcomes.append(", ")
            outcomes.append(f"{outcome} {count}", style=_outcome_style(outcome))
        table.add_row(
            board.label(org.organization_id),
            "-" if org.credits is None else str(org.credits),
            str(org.runs),
            outcomes,
            overview_text(board.overviews.get(org.organization_id)),
        )
    return table


def overview_text(o: OrganizationOverview | None) -> str:
    if o is None:
        return "-"
    return (
        f"brands {o.active_brands} · ready {o.ready_materials} · schedules {o.active_schedules} · "
        f"posts/30d {o.posts_last_30_days} · credits {o.period_credits}+{o.topup_credits}"
    )


def _platforms_table(board: Board) -> Table:
    table = Table(title="Posts per platform", title_justify="left")
    for column in ("platform", "published", f"with {MEDIA_MARK}", "failed"):
        table.add_column(column)
    for platform in sorted(set(board.published) | set(board.failed)):
        table.add_row(
            platform,
            Text(str(board.published[platform]), style="green"),
            Text(str(board.published_with_media[platform]), style="cyan"),
            Text(str(board.failed[platform]), style="red" if board.failed[platform] else ""),
        )
    return table


def _dead_letters_table(board: Board, limit: int = 4) -> Table:
    table = Table(title=f"Dead letters ({len(board.dead_letters)})", title_justify="left")
    for column in ("consumer", "event", "error"):
        table.add_column(column)
    for letter in board.dead_letters[-limit:]:
        table.add_row(letter.consumer, letter.event_type, f"{letter.error_kind}: {letter.error}"[:60])
    return table


def render(
    board: Board,
    *,
    parts: Iterable[tuple[str, bool]] = (),
    footer: str = "",
    runs_limit: int = 14,
    width: int = 160,
) -> Group:
    """The whole view: a status line, the runs (none with runs_limit=0), then organizations,
    platforms and dead letters (side by side when `width` allows)."""
    done, flying = len(board.completed()), len(board.in_flight())
    status = Text("Hopcast ", style="bold")
    for name, running in parts:
        status.append(f"{name} ", style="green" if running else "bold red")
    status.append(f"| runs {done + flying}: {done} ended, {flying} in flight | {board.events} events")
    if board.first_outcome_after is not None:
        status.append(f" | first outcome after {board.first_outcome_after:.1f}s")
    items: list[RenderableType] = [status]
    if runs_limit:
        items.append(_runs_table(board, runs_limit))
    tables = [_organizations_table(board), _platforms_table(board), _dead_letters_table(board)]
    if width >= 150:
        summary = Table.grid(padding=(0, 2))
        summary.add_row(*tables)
        items.append(summary)
    else:
        items.extend(tables)
    if footer:
        items.append(Text(footer, style="dim"))
    return Group(*items)
