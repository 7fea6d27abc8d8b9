"""Databases with history for the end-to-end benchmark: what the four services would hold after
serving the bench's organizations for a while, built once as a template database per service
and cloned for each run (`CREATE DATABASE ... TEMPLATE`).

A template is made in three steps:

1. the services themselves, started on empty databases, read the world's set-up (e2e.py's
   organizations, brands, subscriptions, accounts and schedules, whose ids come from the seed);
2. the history is written beside it: `drafts` runs over the last SPAN_DAYS, spread over the
   organizations in turn, each a material (used by up to USES_PER_MATERIAL runs) drafted into a
   post and published on every platform, with the rows each service keeps of it: content's
   material, run, draft, posts and embeddings (MATERIAL, PENDING_POST, POST), the publisher's
   pending post, attempts and posts, billing's debit and ledger rows (a top-up per organization
   that the debits use up, so every balance still equals its ledger), the scheduler's run and
   its stages; and each service's inbox for the events of the inbox's retention
   (`inbox_retention_days`);
3. each service's own purge (its `hopcast.purge` entry point, at its retention, with the
   kernel's inbox and dead-letter housekeeping), as a deployment's daily purge would have run
   it: what is past a retention is not kept (the scheduler's runs, content's drafts, runs and
   their embeddings, the publisher's pending posts); posts, materials and the ledger stay;
4. the HNSW index where the content service's plan for very large organizations calls for it
   (`index_large_windows`: an organization's duplicate window nearing
   CONTENT_DEDUP_EXACT_MAX_ROWS), after VACUUM ANALYZE, and a `bench_history` row saying what was
   built, when, and with which token key (the publisher's tokens are encrypted under it: runs
   on a clone use it).

A clone is purged again before a run (`purge_clones`): the template is up to MAX_AGE_DAYS old,
and what aged past a retention since it was built is what the deployment's purge of each day
since would have deleted, not work of the run measured.

Texts come from history_texts.py (realistic and distinct); their embeddings from the content
service's default embedder (`make_embedder(ContentSettings())`), cached in STATE as
`embeddings-<embedder>-<dim>-<texts digest>.npy`. The templates stay on the server (`make bench`
keeps its PostgreSQL in bench/.state/postgres for that); they are rebuilt when their key
changes (size, seed, organizations, embedder, any migration, the settings the purges and the
index follow, LAYOUT) or after MAX_AGE_DAYS, since the history's times are relative to when it
was built and the duplicate window (CONTENT_DEDUP_WINDOW_DAYS) is relative to now.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import numpy as np
from common import grant_services, with_database
from history_texts import Distinct, business_of, draft_text, material_text
from pgvector.asyncpg import register_vector

from hopcast_content.adapters import dedup
from hopcast_content.adapters.embedders import make_embedder
from hopcast_content.config import ContentSettings
from hopcast_content.domain.angles import ANGLES
from hopcast_content.domain.embedding import content_hash
from hopcast_publisher.domain.posts import idempotency_key, post_id_for
from hopcast_shared.crypto import new_key_entry
from hopcast_shared.retention import ENTRY_POINT_GROUP, inbox_retention_days, purge_database
from hopcast_shared.settings import KafkaSettings, ServiceSettings, load
from hopcast_shared.topics import ensure_topics
from hopcast_stack.credentials import Credentials
from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet, installed_services
from hopcast_stack.upstream import Upstream

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
STATE = BENCH / ".state" / "history"
PREFIX = "bench_history"
SPAN_DAYS = 90
USES_PER_MATERIAL = 3
MAX_AGE_DAYS = 7
BATCH = 64  # texts a call to the embedder
CHUNK = 50_000  # texts a part file of the embedding cache
# What each service's consumer handles of a published run (its inbox rows; as a run through the
# services leaves them), and of a submitted material.
INBOX_TYPES = {
    "scheduler": (
        "ScheduleTriggerRequested",
        "PendingPostCreated",
        "CreditsDebited",
        "PostPublished",
        "PostPublished",
        "ScheduleRunCompleted",
    ),
    "content": ("ScheduleDue", "PostPublished", "PostPublished", "ScheduleRunCompleted"),
    "billing": ("PendingPostCreated", "ScheduleRunCompleted"),
    "publisher": ("PendingPostCreated", "CreditsDebited"),
}
MATERIAL_INBOX = ("scheduler", "content")
# Content's triggers on posts that keep the angles' totals (migration 0009): off for the load.
ANGLE_TOTALS_TRIGGERS = ("posts_angle_totals_insert", "posts_angle_totals_update", "posts_angle_totals_delete")
ANGLE_REASON = "the angle whose posts earned the most for this brand so far"
# Bump when what a template holds changes without a migration changing: the loader's rows, a
# service's purge (its `hopcast.purge` entry point) or the index (dedup.HNSW_INDEX).
LAYOUT = 3


class WorldOrg(Protocol):
    org: str
    brand: str
    schedule: str
    accounts: dict[str, str]


@dataclass(frozen=True)
class Spec:
    drafts: int
    orgs: int
    seed: int
    platforms: tuple[str, ...]

    def key(self, embedder: str, dim: int, settings: Sequence[int] = ()) -> str:
        """Changes with anything that changes what a template holds: `settings` are those its
        purge and index follow (template_settings()); code other than the migrations (the
        loader, the purges, the index) changes it through LAYOUT."""
        digest = hashlib.sha256()
        digest.update(
            json.dumps([LAYOUT, self.drafts, self.orgs, self.seed, self.platforms, embedder, dim, *settings]).encode()
        )
        for path in sorted([*ROOT.glob("services/*/hopcast_*/migrations/**/*.sql"), *ROOT.glob("shared/**/*.sql")]):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:10]


@dataclass
class Templates:
    """The template database of each service, and what building (or finding) them took."""

    names: dict[str, str]
    token_keys: str
    built_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)


# --- the history's texts and embeddings ------------------------------------------------------


@dataclass(frozen=True)
class Texts:
    materials: list[str]  # material j of organization o is materials[j * orgs + o]
    drafts: list[str]
    hashtags: list[list[str]]
    angles: list[str]


def history_texts(spec: Spec) -> Texts:
    rng = random.Random(spec.seed)
    n_materials = -(-spec.drafts // USES_PER_MATERIAL) + spec.orgs
    seen_materials, seen_drafts = Distinct(), Distinct()
    materials = []
    for m in range(n_materials):
        business = business_of(m % spec.orgs)
        materials.append(seen_materials.take(lambda: material_text(rng, business)))  # noqa: B023 (called at once)
    drafts, hashtags, angles = [], [], []
    for i in range(spec.drafts):
        o, k = i % spec.orgs, i // spec.orgs
        angle = rng.choice(ANGLES)
        material, business = materials[(k // USES_PER_MATERIAL) * spec.orgs + o], business_of(o)
        text, tags = seen_drafts.take(
            lambda: draft_text(rng, business, material, angle),  # noqa: B023 (called at once)
            lambda drawn: drawn[0],
        )
        drafts.append(text)
        hashtags.append(tags)
        angles.append(angle.value)
    return Texts(materials, drafts, hashtags, angles)


async def embeddings(texts: Sequence[str], log: Callable[[str], None]) -> tuple[np.ndarray, str, dict[str, Any]]:
    """The default embedder's vectors of `texts` (float32, one row each), from the cache file when
    it is there; and the embedder's name.

    The build has the machine to itself, so the model gets every core (the vectors are the
    default's, one thread or several). Every CHUNK texts are saved as a part file beside the
    cache, so a long build (1,000,000 runs: over an hour here) that is stopped resumes where it
    was; the parts are joined into the cache file at the end."""
    threads = min(os.cpu_count() or 1, 64)
    embedder = make_embedder(ContentSettings(embed_threads=threads))
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    path = STATE / f"embeddings-{embedder.name}-{embedder.dim}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path), embedder.name, {"embeddings_cached": str(path.relative_to(ROOT))}
    STATE.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(texts), CHUNK)
    parts = [path.with_name(f"{path.stem}.part-{CHUNK}-{start // CHUNK}.npy") for start in starts]
    missing = [(start, part) for start, part in zip(starts, parts, strict=True) if not part.exists()]
    done = len(parts) - len(missing)
    log(f"history: embedding {len(texts)} texts with {embedder.name} ({done} of {len(parts)} parts saved before)")
    started = time.perf_counter()
    left = sum(len(texts[start : start + CHUNK]) for start, _ in missing)
    embedded = 0
    for start, part in missing:
        chunk = texts[start : start + CHUNK]
        out = np.empty((len(chunk), embedder.dim), dtype=np.float32)
        for at in range(0, len(chunk), BATCH):
            out[at : at + BATCH] = np.asarray(await embedder.embed(chunk[at : at + BATCH]), dtype=np.float32)
        _save(part, out)
        embedded, left = embedded + len(chunk), left - len(chunk)
        rate = embedded / (time.perf_counter() - started)
        log(f"history: {len(texts) - left} of {len(texts)} embedded, {rate:.0f}/s, {left / rate / 60:.0f} min left")
    embed_s = time.perf_counter() - started
    vectors = np.concatenate([np.load(part) for part in parts]) if parts else np.empty((0, embedder.dim), np.float32)
    _save(path, vectors)
    for part in parts:
        part.unlink()
    facts = {"embed_s": round(embed_s, 1), "embed_threads": threads, "embedded": embedded, "parts_reused": done}
    return vectors, embedder.name, {**facts, "embeddings_cached": str(path.relative_to(ROOT))}


def _save(path: Path, array: np.ndarray) -> None:
    """Writes `array` to `path` whole or not at all."""
    partial = path.with_name(f"{path.stem}.partial.npy")
    np.save(partial, array)
    partial.rename(path)


# --- the rows of the history -----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One run of the history, with the ids every service shares."""

    i: int
    o: WorldOrg
    material: uuid.UUID
    material_index: int
    run: uuid.UUID
    pending: uuid.UUID
    at: datetime

    @property
    def org(self) -> uuid.UUID:
        return uuid.UUID(self.o.org)

    @property
    def brand(self) -> uuid.UUID:
        return uuid.UUID(self.o.brand)


def _runs(spec: Spec, world: Sequence[WorldOrg], now: datetime) -> Iterator[Run]:
    start = now - timedelta(days=SPAN_DAYS)
    step = timedelta(days=SPAN_DAYS) / max(1, spec.drafts)
    for i in range(spec.drafts):
        o, k = i % spec.orgs, i // spec.orgs
        m = (k // USES_PER_MATERIAL) * spec.orgs + o
        yield Run(
            i,
            world[o],
            _id(spec, "material", m),
            m,
            _id(spec, "run", i),
            _id(spec, "pending", i),
            start + step * i,
        )


def _id(spec: Spec, kind: str, n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"hopcast-bench-history/{spec.seed}/{kind}/{n}")


def _uses(spec: Spec) -> dict[int, list[int]]:
    """material index -> the runs that used it."""
    uses: dict[int, list[int]] = {}
    for i in range(spec.drafts):
        o, k = i % spec.orgs, i // spec.orgs
        uses.setdefault((k // USES_PER_MATERIAL) * spec.orgs + o, []).append(i)
    return uses


def _engagement(rng: random.Random) -> tuple[int, int, int, int, float]:
    impressions = int(rng.lognormvariate(6, 1))
    likes, comments, shares = (int(impressions * rng.uniform(0, f)) for f in (0.05, 0.01, 0.01))
    return likes, comments, shares, impressions, (likes + comments + shares) / max(1, impressions)


Row = dict[str, Any]


class Loader:
    """COPY of the history's rows into one service's template database."""

    def __init__(self, conn: asyncpg.Connection, spec: Spec, world: Sequence[WorldOrg], texts: Texts) -> None:
        self.conn, self.spec, self.world, self.texts = conn, spec, world, texts
        self.inbox_days = _inbox_days()
        self.now = datetime.now(UTC)
        self.counts: dict[str, float] = {}

    async def copy(self, table: str, rows: Iterator[Row], chunk: int = 50_000) -> None:
        """COPY `rows` (column -> value, the same columns in each) into `table`, a chunk at a time."""
        batch: list[Row] = []

        async def flush() -> None:
            if batch:
                columns = list(batch[0])
                records = [tuple(row[c] for c in columns) for row in batch]
                await self.conn.copy_records_to_table(table, records=records, columns=columns)
                self.counts[table] = self.counts.get(table, 0) + len(batch)
                batch.clear()

        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                await flush()
        await flush()

    def runs(self) -> Iterator[Run]:
        return _runs(self.spec, self.world, self.now)

    def at(self, run_index: int) -> datetime:
        return self.now - timedelta(days=SPAN_DAYS) + timedelta(days=SPAN_DAYS) * run_index / self.spec.drafts

    async def inbox(self, service: str) -> None:
        """The ids of the events handled in the inbox's retention (what the service's set-up left
        there tells its consumer's name and outcome)."""
        found = await self.conn.fetchrow(
            "SELECT consumer, outcome FROM inbox GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        )
        consumer, outcome = (found["consumer"], found["outcome"]) if found else (service, "handled")
        since = self.now - timedelta(days=self.inbox_days)
        rng = random.Random(self.spec.seed)

        def rows() -> Iterator[Row]:
            for r in self.runs():
                if r.at < since:
                    continue
                kinds = INBOX_TYPES[service]
                if service in MATERIAL_INBOX and (r.i // self.spec.orgs) % USES_PER_MATERIAL == 0:
                    kinds += ("MaterialSubmitted",)  # the run is its material's first
                for n, kind in enumerate(kinds):
                    yield {
                        "consumer": consumer,
                        "organization_id": r.org,
                        "message_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "event_type": kind,
                        "outcome": outcome,
                        "handled_at": r.at + timedelta(milliseconds=100 * (n + 1)),
                    }

        await self.copy("inbox", rows())


async def load_content(db: Loader, vectors: np.ndarray) -> None:
    """Materials, runs, drafts, posts (one per platform, with engagement) and embeddings: the
    material's, the draft's and one POST per draft (the posts of a draft share its vector)."""
    spec, texts, platforms = db.spec, db.texts, list(db.spec.platforms)
    n_materials = len(texts.materials)
    rng = random.Random(spec.seed + 1)
    uses = _uses(spec)

    def materials() -> Iterator[Row]:
        for m, runs in uses.items():
            o = db.world[m % spec.orgs]
            yield {
                "id": _id(spec, "material", m),
                "organization_id": uuid.UUID(o.org),
                "brand_profile_id": uuid.UUID(o.brand),
                "type": "TEXT",
                "body": texts.materials[m],
                "max_uses": len(runs),
                "status": "USED",
                "content_hash": content_hash(texts.materials[m]),
                "usage_count": len(runs),
                "last_used_at": db.at(runs[-1]),
                "created_at": db.at(runs[0]) - timedelta(days=1),
                "updated_at": db.at(runs[-1]),
            }

    await db.copy("materials", materials())
    await db.copy(
        "runs",
        (
            {
                "run_id": r.run,
                "organization_id": r.org,
                "schedule_id": uuid.UUID(r.o.schedule),
                "brand_profile_id": r.brand,
                "due_at": r.at,
                "result": "DRAFTED",
                "handled_at": r.at,
            }
            for r in db.runs()
        ),
    )
    await db.copy(
        "pending_posts",
        (
            {
                "id": r.pending,
                "run_id": r.run,
                "organization_id": r.org,
                "brand_profile_id": r.brand,
                "schedule_id": uuid.UUID(r.o.schedule),
                "material_id": r.material,
                "content": texts.drafts[r.i],
                "hashtags": texts.hashtags[r.i],
                "media_urls": [],
                "platforms": platforms,
                "angle": texts.angles[r.i],
                "angle_reason": ANGLE_REASON,
                "max_similarity": round(rng.uniform(0.1, 0.6), 4),
                "requires_approval": False,
                "due_at": r.at,
                "created_at": r.at,
                "ended_at": r.at + timedelta(seconds=2),
                "outcome": "PUBLISHED",
                "use_counted": True,
                "texts": json.dumps(dict.fromkeys(platforms, texts.drafts[r.i])),
            }
            for r in db.runs()
        ),
    )

    def posts() -> Iterator[Row]:
        for r in db.runs():
            for platform in platforms:
                *_, impressions, rate = _engagement(rng)
                yield {
                    "post_id": post_id_for(r.pending, platform),
                    "organization_id": r.org,
                    "brand_profile_id": r.brand,
                    "pending_post_id": r.pending,
                    "material_id": r.material,
                    "platform": platform,
                    "angle": texts.angles[r.i],
                    "engagement_rate": rate,
                    "impressions": impressions,
                    "published_at": r.at + timedelta(seconds=1),
                    "updated_at": r.at + timedelta(hours=6),
                }

    # Without the triggers that keep the angles' totals (migration 0009), which would update an
    # angle's row once per post: the totals are made from the posts at once after, as the
    # migration makes them.
    for trigger in ANGLE_TOTALS_TRIGGERS:
        await db.conn.execute(f"ALTER TABLE posts DISABLE TRIGGER {trigger}")
    await db.copy("posts", posts())
    for trigger in ANGLE_TOTALS_TRIGGERS:
        await db.conn.execute(f"ALTER TABLE posts ENABLE TRIGGER {trigger}")
    await db.conn.execute("SELECT angle_totals_rebuild()")

    def embeddings() -> Iterator[Row]:
        for m, runs in uses.items():
            o = db.world[m % spec.orgs]
            h = content_hash(texts.materials[m])
            material = _id(spec, "material", m)
            yield {
                "organization_id": uuid.UUID(o.org),
                "brand_profile_id": uuid.UUID(o.brand),
                "kind": "MATERIAL",
                "source_id": material,
                "material_id": material,
                "content_hash": h,
                "material_hash": h,
                "embedding": vectors[m],
                "created_at": db.at(runs[0]) - timedelta(days=1),
            }
        for r in db.runs():
            draft = {
                "organization_id": r.org,
                "brand_profile_id": r.brand,
                "kind": "PENDING_POST",
                "source_id": r.pending,
                "material_id": r.material,
                "content_hash": content_hash(texts.drafts[r.i]),
                "material_hash": content_hash(texts.materials[r.material_index]),
                "embedding": vectors[n_materials + r.i],
                "created_at": r.at,
            }
            yield draft
            post = post_id_for(r.pending, platforms[0])
            yield {**draft, "kind": "POST", "source_id": post, "created_at": r.at + timedelta(seconds=1)}

    # The HNSW index, where an organization's window calls for it, comes after the purge
    # (index_large_windows): the migrations leave it to such organizations (0007).
    await db.copy("content_embeddings", embeddings())


def _external(r: Run, platform: str) -> tuple[str, str]:
    post = post_id_for(r.pending, platform).hex[:16]
    return f"sandbox-{post}", f"https://sandbox.invalid/{platform.lower()}/{post}"


async def load_publisher(db: Loader) -> None:
    """Pending posts (published), their attempt per platform, and the posts."""
    texts, platforms = db.texts, list(db.spec.platforms)
    rng = random.Random(db.spec.seed + 2)
    await db.copy(
        "pending_posts",
        (
            {
                "id": r.pending,
                "organization_id": r.org,
                "has_post": True,
                "run_id": r.run,
                "schedule_id": uuid.UUID(r.o.schedule),
                "brand_profile_id": r.brand,
                "material_id": r.material,
                "due_at": r.at,
                "content": texts.drafts[r.i],
                "hashtags": texts.hashtags[r.i],
                "media_urls": [],
                "platforms": platforms,
                "angle": texts.angles[r.i],
                "requires_approval": False,
                "debit": "DEBITED",
                "status": "PUBLISHED",
                "claims": 1,
                "cause_event_id": uuid.UUID(int=rng.getrandbits(128)),
                "publishing_at": r.at + timedelta(seconds=1),
                "completed_at": r.at + timedelta(seconds=2),
                "created_at": r.at,
                "updated_at": r.at + timedelta(seconds=2),
                "texts": json.dumps(dict.fromkeys(platforms, texts.drafts[r.i])),
                "angle_reason": ANGLE_REASON,
                "run_deadline": r.at + timedelta(hours=1),
            }
            for r in db.runs()
        ),
    )

    def attempts() -> Iterator[Row]:
        for r in db.runs():
            for platform in platforms:
                yield {
                    "pending_post_id": r.pending,
                    "platform": platform,
                    "idempotency_key": idempotency_key(r.pending, platform),
                    "social_account_id": uuid.UUID(r.o.accounts[platform]),
                    "status": "PUBLISHED",
                    "created_at": r.at + timedelta(seconds=1),
                }

    await db.copy("publish_attempts", attempts())

    def posts() -> Iterator[Row]:
        for r in db.runs():
            for platform in platforms:
                external_id, external_url = _external(r, platform)
                likes, comments, shares, impressions, rate = _engagement(rng)
                yield {
                    "id": post_id_for(r.pending, platform),
                    "organization_id": r.org,
                    "pending_post_id": r.pending,
                    "run_id": r.run,
                    "schedule_id": uuid.UUID(r.o.schedule),
                    "brand_profile_id": r.brand,
                    "material_id": r.material,
                    "social_account_id": uuid.UUID(r.o.accounts[platform]),
                    "platform": platform,
                    "angle": texts.angles[r.i],
                    "content": texts.drafts[r.i],
                    "external_id": external_id,
                    "external_url": external_url,
                    "published_at": r.at + timedelta(seconds=1),
                    "likes": likes,
                    "comments": comments,
                    "shares": shares,
                    "impressions": impressions,
                    "engagement_rate": rate,
                    "engagement_observed_at": r.at + timedelta(hours=6),
                    "created_at": r.at + timedelta(seconds=1),
                    "updated_at": r.at + timedelta(hours=6),
                    "hashtags": texts.hashtags[r.i],
                    "angle_reason": ANGLE_REASON,
                }

    await db.copy("posts", posts())


async def load_billing(db: Loader) -> None:
    """A debit per run (GENERATE 1, PUBLISH 1 per platform, from the top-up bucket) and its ledger
    rows, after a top-up per organization of exactly what its runs spent: the balances stay what
    the set-up made them, and each still equals the sum of its ledger."""
    platforms = list(db.spec.platforms)
    publish = len(platforms)
    balances = {
        r["organization_id"]: r["period_credits"] + r["topup_credits"]
        for r in await db.conn.fetch("SELECT organization_id, period_credits, topup_credits FROM balances")
    }
    spent: dict[uuid.UUID, int] = {}
    for r in db.runs():
        spent[r.org] = spent.get(r.org, 0) + 1 + publish
    await db.copy(
        "debits",
        (
            {
                "pending_post_id": r.pending,
                "organization_id": r.org,
                "run_id": r.run,
                "schedule_id": uuid.UUID(r.o.schedule),
                "brand_profile_id": r.brand,
                "due_at": r.at,
                "platforms": platforms,
                "status": "DEBITED",
                "generate_amount": 1,
                "publish_amount": publish,
                "from_period": 0,
                "from_topup": 1 + publish,
                "created_at": r.at + timedelta(milliseconds=500),
            }
            for r in db.runs()
        ),
    )

    def ledger() -> Iterator[Row]:
        left = dict(spent)
        for org, amount in spent.items():
            grant = f"history-{db.spec.seed}-{org.hex[:8]}"
            yield {
                "organization_id": org,
                "action": "TOPUP",
                "period_amount": 0,
                "topup_amount": amount,
                "idempotency_key": f"topup:{grant}",
                "pending_post_id": None,
                "run_id": None,
                "balance_after": balances.get(org, 0) + amount,
                "created_at": db.now - timedelta(days=SPAN_DAYS, hours=1),
                "description": f"Top-up grant {grant}",
            }
        on = " on " + ", ".join(platforms)
        for r in db.runs():
            for action, amount, where in (("GENERATE", 1, ""), ("PUBLISH", publish, on)):
                left[r.org] -= amount
                yield {
                    "organization_id": r.org,
                    "action": action,
                    "period_amount": 0,
                    "topup_amount": -amount,
                    "idempotency_key": f"debit:{r.pending}:{action}",
                    "pending_post_id": r.pending,
                    "run_id": r.run,
                    "balance_after": balances.get(r.org, 0) + left[r.org],
                    "created_at": r.at + timedelta(milliseconds=500),
                    "description": f"Credit deduction for {action}{where}",
                }

    await db.copy("ledger", ledger())


async def load_scheduler(db: Loader) -> None:
    """Each run (TRIGGER, PUBLISHED) and the stages its events reported."""
    platforms = list(db.spec.platforms)
    rng = random.Random(db.spec.seed + 3)
    await db.copy(
        "schedule_runs",
        (
            {
                "run_id": r.run,
                "schedule_id": uuid.UUID(r.o.schedule),
                "organization_id": r.org,
                "due_at": r.at,
                "kind": "TRIGGER",
                "trigger_event_id": uuid.UUID(int=rng.getrandbits(128)),
                "created_at": r.at,
                "outcome": "PUBLISHED",
                "completed_at": r.at + timedelta(seconds=2),
                "deadline_at": None,  # a triggered run has none
                "pending_post_id": r.pending,
            }
            for r in db.runs()
        ),
    )

    def stages() -> Iterator[Row]:
        for r in db.runs():
            stage = {"run_id": r.run, "organization_id": r.org, "pending_post_id": r.pending}
            nothing = {"platform": None, "detail": None, "credits": None}
            ms = timedelta(milliseconds=1)
            yield {**stage, **nothing, "stage": "PendingPostCreated", "at": r.at + 300 * ms}
            yield {**stage, **nothing, "stage": "CreditsDebited", "at": r.at + 500 * ms, "credits": -1 - len(platforms)}
            for platform in platforms:
                yield {**stage, **nothing, "stage": "PostPublished", "at": r.at + 1000 * ms, "platform": platform}
            yield {**stage, **nothing, "stage": "ScheduleRunCompleted", "at": r.at + 2000 * ms, "detail": "PUBLISHED"}

    await db.copy("run_stages", stages())


# --- the templates ---------------------------------------------------------------------------


SetUp = Callable[[ServiceSet, Upstream], Awaitable[None]]


async def _server(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(with_database(server_url, "postgres"))


async def _found(server_url: str, names: dict[str, str], key: str) -> Templates | None:
    """The templates of `key` if all are there, complete and young enough."""
    conn = await _server(server_url)
    try:
        present = {
            r["datname"]
            for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname = ANY($1)", list(names.values()))
        }
    finally:
        await conn.close()
    if present != set(names.values()):
        return None
    rows: list[asyncpg.Record] = []
    for name in names.values():
        db = await asyncpg.connect(with_database(server_url, name))
        try:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                row = await db.fetchrow("SELECT key, built_at, token_keys, facts FROM bench_history")
                if row is not None:
                    rows.append(row)
        finally:
            await db.close()
    if len(rows) != len(names) or any(r["key"] != key for r in rows):
        return None
    built_at = min(r["built_at"] for r in rows)
    if datetime.now(UTC) - built_at > timedelta(days=MAX_AGE_DAYS):
        return None
    return Templates(names, rows[0]["token_keys"], built_at, {**json.loads(rows[0]["facts"]), "built_now": False})


async def drop_templates(server_url: str, *, size: int | None = None) -> list[str]:
    """Drop the templates of a history of `size` runs (None: of any size), whatever their key: a
    server keeps one set per size (make bench's and FULL=1's side by side)."""
    conn = await _server(server_url)
    try:
        found = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{PREFIX}_%")
        names = []
        for row in found:
            # bench_history_<service>_<size>_<key>; one without its size is from before sizes were kept apart.
            kept_size = row["datname"].split("_")[3]
            if size is None or kept_size == str(size) or not kept_size.isdigit():
                names.append(row["datname"])
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    return names


async def ensure_templates(
    server_url: str,
    kafka: KafkaSettings,
    credentials: Credentials | None,
    spec: Spec,
    world: Sequence[WorldOrg],
    set_up: SetUp,
    log: Callable[[str], None] = print,
) -> Templates:
    """The template databases of `spec`, built unless the server has them already."""
    started = time.perf_counter()
    texts = history_texts(spec)
    texts_s = time.perf_counter() - started
    vectors, embedder, facts = await embeddings([*texts.materials, *texts.drafts], log)
    key = spec.key(embedder, vectors.shape[1], template_settings())
    names = {service: f"{PREFIX}_{service}_{spec.drafts}_{key}" for service in installed_services()}
    found = await _found(server_url, names, key)
    if found is not None:
        return found
    await drop_templates(server_url, size=spec.drafts)
    log(f"history: building {spec.drafts} runs over {spec.orgs} organizations into {', '.join(names.values())}")
    facts.update({"embedder": embedder, "texts_s": round(texts_s, 1), "drafts": spec.drafts, "orgs": spec.orgs})
    conn = await _server(server_url)
    try:
        for name in names.values():
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    urls = {service: with_database(server_url, name) for service, name in names.items()}
    for url in urls.values():
        db = await asyncpg.connect(url)
        try:
            await db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            await db.close()

    # 1. The set-up, as the services make it (on topics of their own).
    phase = time.perf_counter()
    await ensure_topics(kafka)
    await grant_services(kafka, credentials)
    token_keys = new_key_entry(1)
    with tempfile.TemporaryDirectory(prefix="hopcast-bench-history-") as state_dir:
        services = ServiceSet(
            kafka=kafka,
            database_urls=urls,
            state_dir=Path(state_dir),
            extra_env={**FAST_SERVICE_ENV, "TOKEN_KEYS": token_keys},
            credentials=credentials,
        )
        try:
            await services.start()
            async with Upstream(services.kafka_as("upstream"), keyring=services.keyring, observer=kafka) as upstream:
                await set_up(services, upstream)
        finally:
            services.stop()
    facts["set_up_s"] = round(time.perf_counter() - phase, 1)

    # 2. The history, beside it.
    phase = time.perf_counter()
    loaders: dict[str, Callable[[Loader], Awaitable[None]]] = {
        "content": lambda loader: load_content(loader, vectors),
        "publisher": load_publisher,
        "billing": load_billing,
        "scheduler": load_scheduler,
    }
    rows: dict[str, dict[str, float]] = {}
    purged: dict[str, dict[str, int]] = {}
    purge_s = 0.0
    for service, url in urls.items():
        db = await asyncpg.connect(url)
        try:
            await register_vector(db)
            loader = Loader(db, spec, world, texts)
            async with db.transaction():
                if service in loaders:
                    await loaders[service](loader)
                await loader.inbox(service)
            purging = time.perf_counter()
            purged[service] = await purge(db, service)
            purge_s += time.perf_counter() - purging
            # Vacuumed before the index is built: VACUUM scans every index of a table with dead
            # rows, and an HNSW graph is slow to scan.
            await db.execute("VACUUM ANALYZE")
            if service == "content":
                facts["large_windows"] = await index_large_windows(db)
            rows[service] = loader.counts
        finally:
            await db.close()
    index_s = facts.get("large_windows", {}).get("index_s", 0.0)
    # COPY and VACUUM ANALYZE, as before the purge and the index were steps of their own.
    facts["load_s"] = round(time.perf_counter() - phase - purge_s - index_s, 1)
    facts["purge_s"] = round(purge_s, 1)
    facts["rows"] = rows
    facts["purged"] = purged
    facts["database_mb"] = await _sizes(server_url, names)

    # 3. What was built.
    built_at = datetime.now(UTC)
    facts["build_s"] = round(time.perf_counter() - started, 1)
    for url in urls.values():
        db = await asyncpg.connect(url)
        try:
            await db.execute(
                "CREATE TABLE bench_history (key text, built_at timestamptz, token_keys text, facts jsonb)"
            )
            await db.execute(
                "INSERT INTO bench_history VALUES ($1, $2, $3, $4)", key, built_at, token_keys, json.dumps(facts)
            )
        finally:
            await db.close()
    return Templates(names, token_keys, built_at, {**facts, "built_now": True})


def _inbox_days() -> int:
    """The inbox's retention as the services read it (their environment's KAFKA_* retentions)."""
    return inbox_retention_days(load(KafkaSettings))


def template_settings() -> list[int]:
    """The settings of this environment that a template's purge and index follow: each service's
    retention, the inbox's, the duplicate window and the exact scan's limit."""
    content = load(ContentSettings)
    return [
        *(ServiceSettings.for_service(service).retention_days for service in sorted(installed_services())),
        _inbox_days(),
        content.dedup_window_days,
        content.dedup_exact_max_rows,
    ]


async def purge(db: asyncpg.Connection, service: str) -> dict[str, int]:
    """`service`'s own purge of `db` at its retention (<SERVICE>_RETENTION_DAYS, as the services
    read it from this environment), with the kernel's housekeeping, in one transaction: the rows
    deleted per table."""
    purges = {e.name: e for e in entry_points(group=ENTRY_POINT_GROUP)}
    async with db.transaction():
        counts = await purge_database(
            db,
            purges[service].load(),
            older_than_days=ServiceSettings.for_service(service).retention_days,
            inbox_days=_inbox_days(),
        )
    if counts is None:
        raise RuntimeError(f"another purge holds {service}'s database: nothing else should run on it yet")
    return counts


# The share of CONTENT_DEDUP_EXACT_MAX_ROWS at which an organization's window "nears" it (the
# plan for very large organizations): the template ages up to MAX_AGE_DAYS, and its windows with it.
NEAR_EXACT_MAX = 0.8


async def index_large_windows(db: asyncpg.Connection) -> dict[str, Any]:
    """The content service's plan for very large organizations (its README): once an
    organization's duplicate window nears CONTENT_DEDUP_EXACT_MAX_ROWS embeddings (NEAR_EXACT_MAX
    of it, counted as the check counts them), the HNSW index (dedup.HNSW_INDEX), which the
    check's HNSW path reads past the limit. The largest window, whether the index was made, and
    how long that took."""
    settings = load(ContentSettings)
    largest = await db.fetchval(
        """SELECT coalesce(max(n), 0) FROM (
               SELECT count(*) AS n FROM content_embeddings
               WHERE created_at >= now() - make_interval(days => $1) GROUP BY organization_id) AS windows""",
        settings.dedup_window_days,
    )
    started = time.perf_counter()
    indexed = largest >= NEAR_EXACT_MAX * settings.dedup_exact_max_rows
    if indexed:
        await db.execute("SET maintenance_work_mem = '1GB'")
        await db.execute(dedup.HNSW_INDEX)
        await db.execute("RESET maintenance_work_mem")
    return {"largest": largest, "hnsw": indexed, "index_s": round(time.perf_counter() - started, 1)}


async def purge_clones(databases: dict[str, tuple[str, str]]) -> tuple[dict[str, Any], float]:
    """Each clone purged by its service's own purge before a run (what aged past a retention
    since the template was built), then vacuumed where anything was deleted, so that neither is
    work of the run: the rows deleted per service and table, and how long it took."""
    started = time.perf_counter()
    purged = {}
    for service, (_, url) in databases.items():
        db = await asyncpg.connect(url)
        try:
            purged[service] = await purge(db, service)
            if any(purged[service].values()):
                await db.execute("VACUUM ANALYZE")
        finally:
            await db.close()
    return purged, time.perf_counter() - started


async def _sizes(server_url: str, names: dict[str, str]) -> dict[str, float]:
    conn = await _server(server_url)
    try:
        return {
            service: round(await conn.fetchval("SELECT pg_database_size($1)", name) / 2**20, 1)
            for service, name in names.items()
        }
    finally:
        await conn.close()


async def clone(server_url: str, templates: Templates) -> tuple[dict[str, tuple[str, str]], float]:
    """A fresh copy of each template ((name, url) per service), and how long copying took."""
    conn = await _server(server_url)
    made = {}
    started = time.perf_counter()
    try:
        for service, template in templates.names.items():
            name = f"bench_e2e_hist_{service}_{uuid.uuid4().hex[:8]}"
            # FILE_COPY copies the files (and a checkpoint) instead of writing every page to the WAL.
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
            made[service] = (name, with_database(server_url, name))
    finally:
        await conn.close()
    return made, time.perf_counter() - started


async def keep_schedules_quiet(url: str, days: list[int]) -> None:
    """The world's schedules never fire by the clock (e2e.py's `quiet_days`, a day neither today
    nor tomorrow): a template built days ago has its next run on a day that may now be near, so a
    clone's schedules move to today's quiet day, as a ScheduleUpdated of their days would."""
    now = datetime.now(UTC)
    ahead = next(n for n in range(1, 8) if (now + timedelta(days=n)).isoweekday() % 7 == days[0])
    next_run = (now + timedelta(days=ahead)).replace(hour=3, minute=0, second=0, microsecond=0)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE schedules SET days_of_week = $1, next_run_at = $2", days, next_run)
    finally:
        await conn.close()
