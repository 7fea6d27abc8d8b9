"""The publisher on one real database, shared by this folder's tests: a `Harness` handles events
as the consumer does (inbox, outbox, dead letters) and runs the publishing loop a round at a time;
its tenants send upstream's events. The relay is not running: events are read from the outbox.

Fixtures: `db` (the publisher's migrated database), `harness` (every platform on the sandbox),
`harness_with` (other adapters, settings or keys), `rotation` (the keys after a key rotation).
Test modules cannot import each other (--import-mode=importlib): what they share is here.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.platforms.base import PlatformAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.bootstrap import MIGRATIONS, definition
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.publishing_loop import PublishingLoop
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import Envelope, Platform
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import Keyring, account_transit_aad, load_keyring
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

KEY_1 = base64.b64encode(os.urandom(32)).decode()
KEY_2 = base64.b64encode(os.urandom(32)).decode()
KAFKA = KafkaSettings(topic_prefix="t.")
SETTINGS = PublisherSettings(lease_s=300, http_deadline_s=10)
TOPIC = {"post": "content.events", "debit": "billing.events", "debit_rejected": "billing.events"}
"""Where each of a pending post's inputs arrives (the rest from upstream.events)."""


def keyring(*keys: str) -> Keyring:
    return load_keyring(CryptoSettings(token_keys=",".join(f"{i}:{k}" for i, k in enumerate(keys, start=1))))


# The key of the `publisher` fixture's service, for the tokens the tests send it.
RUNTIME_KEYRING = keyring(base64.b64encode(os.urandom(32)).decode())


class Harness:
    """The publisher on one database: `send` handles an event as the consumer would,
    `publish` runs one round of the publishing loop."""

    def __init__(
        self, db: Database, adapters: dict[str, PlatformAdapter], ring: Keyring, settings: PublisherSettings = SETTINGS
    ) -> None:
        self.db = db
        self.adapters = adapters
        self.keyring = ring
        self.tokens = AccountTokens(ring)
        service = definition(settings=settings, adapters=adapters, keyring=ring)
        self.consumer = EventConsumer(
            "publisher",
            db,
            service.handlers,
            kafka=KAFKA,
            settings=ServiceSettings(
                name="publisher", database_url=db.url, http_port=18084, handler_backoff_initial_s=0.01
            ),
        )
        self.loop = PublishingLoop(db, KAFKA, adapters, self.tokens, settings)

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    @staticmethod
    def input_record(post: dict[str, Any], name: str) -> Any:
        """One of a pending post's inputs (of `Tenant.post_events`) as the record the consumer reads."""
        return as_record(post[name], topic=TOPIC.get(name, "upstream.events"))

    async def deliver(self, post: dict[str, Any], *names: str) -> None:
        """A pending post's inputs, each handled, in this order."""
        for name in names:
            assert await self.consumer.handle_record(self.input_record(post, name)) == "handled"

    async def publish(self) -> int:
        return await self.loop.publish_batch()

    async def events(self, event_type: str, topic: str | None = None) -> list[dict[str, Any]]:
        """The events of a type in the outbox (on one topic, if named), each with its `topic`."""
        rows = await self.db.pool.fetch(
            "SELECT topic, payload FROM outbox WHERE event_type = $1 AND ($2::text IS NULL OR topic = $2) ORDER BY id",
            event_type,
            topic,
        )
        return [{"topic": r["topic"], **json.loads(r["payload"])} for r in rows]

    @staticmethod
    def of_run(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
        return [e for e in events if e["data"]["run_id"] == run_id]

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.publisher.dlq' ORDER BY id")
        return [json.loads(r["payload"]) for r in rows]

    async def account(self, account_id: str) -> dict[str, Any]:
        row = await self.db.pool.fetchrow("SELECT * FROM social_accounts WHERE id = $1", uuid.UUID(account_id))
        assert row is not None
        return dict(row)

    async def opened(self, account_id: str) -> str:
        """The plaintext of an account's stored access token."""
        return self.tokens.open(uuid.UUID(account_id), (await self.account(account_id))["access_token"])

    async def all_text(self, *, but: tuple[str, ...] = ()) -> str:
        """Every row of every table of the publisher's database but those named (outbox
        payloads decoded), as text: where a secret or a deleted tenant must not be."""
        parts = []
        tables = await self.db.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for t in (t for t in tables if t["tablename"] not in but):
            for row in await self.db.pool.fetch(f'SELECT * FROM "{t["tablename"]}"'):
                for value in row.values():
                    parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        return "\n".join(parts)

    async def tenant(self) -> Tenant:
        """A new organization with one brand, created."""
        return await Tenant(self).create()

    async def org(self) -> Org:
        """A new organization with one brand, created, as the token tests drive it."""
        org = Org(self)
        await org.create()
        return org


class Tenant:
    """One organization with one brand, as upstream creates them."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Envelope:
        return example_event(type_name, organization_id=self.org, **changes)

    async def create(self) -> Tenant:
        assert await self.h.send(self.event("OrganizationCreated")) == "handled"
        assert await self.h.send(self.event("BrandProfileCreated", brand_profile_id=self.brand)) == "handled"
        return self

    def transport(self, plaintext: str, account_id: str) -> str:
        """A token as upstream sends it for one of this organization's accounts."""
        return str(self.h.keyring.encrypt(plaintext, associated_data=account_transit_aad(self.org, account_id)))

    async def account(
        self, platform: str, *, default: bool = False, active: bool = True, token: str | None = None, **more: Any
    ) -> str:
        account_id = str(uuid.uuid4())
        api = "https://mastodon.example" if platform == "MASTODON" else None
        outcome = await self.h.send(
            self.event(
                "SocialAccountConnected",
                social_account_id=account_id,
                platform=platform,
                handle=f"@{platform.lower()}-{account_id[:6]}",
                api_base_url=more.pop("api_base_url", api),
                access_token=self.transport(token or f"plain-access-{account_id}", account_id),
                refresh_token=None,
                token_expires_at=None,
                is_active=active,
                **more,
            )
        )
        assert outcome == "handled"
        linked = self.event(
            "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=account_id, is_default=default
        )
        assert await self.h.send(linked) == "handled"
        return account_id

    def post_events(
        self, *, platforms: list[str], requires_approval: bool = False, media: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A pending post's events; text only unless `media` are given (the contract's example
        carries an image, which the live adapters would fetch)."""
        pending, run = str(uuid.uuid4()), str(uuid.uuid4())
        return {
            "post": self.event(
                "PendingPostCreated",
                pending_post_id=pending,
                run_id=run,
                brand_profile_id=self.brand,
                platforms=platforms,
                requires_approval=requires_approval,
                media=[] if media is None else media,
            ),
            "debit": self.event("CreditsDebited", pending_post_id=pending, run_id=run),
            "debit_rejected": self.event("CreditsDebitRejected", pending_post_id=pending, run_id=run),
            "approve": self.event("PendingPostApproved", pending_post_id=pending),
            "reject": self.event("PendingPostRejected", pending_post_id=pending),
            "pending_post_id": pending,
            "run_id": run,
        }


class Org(Tenant):
    """A tenant as the token tests drive it: its events stamped now, accounts connected with
    the tokens (and issued times) a test names, linked and posted to one at a time."""

    @property
    def id(self) -> str:
        return self.org

    @staticmethod
    def rfc3339(when: datetime) -> str:
        return when.isoformat().replace("+00:00", "Z")

    def event(self, type_name: str, **changes: Any) -> Envelope:
        return example_event(type_name, organization_id=self.org, time=datetime.now(UTC), **changes)

    def seal(self, plaintext: str, account_id: str) -> str:
        return self.transport(plaintext, account_id)

    def account_event(
        self,
        account_id: str,
        *,
        platform: str = "MASTODON",
        access: str | None = None,
        refresh: str | None = None,
        issued_at: datetime | None = None,
        type_name: str = "SocialAccountConnected",
        **changes: Any,
    ) -> Envelope:
        """A SocialAccountConnected (or ...Updated) whose tokens are sealed for it, unless given."""
        fields: dict[str, Any] = {
            "social_account_id": account_id,
            "platform": platform,
            "handle": f"@{platform.lower()}-{account_id[:6]}",
            "api_base_url": "https://mastodon.example" if platform == "MASTODON" else None,
            "external_account_id": None,
            "access_token": access or self.seal(f"access-{account_id}", account_id),
            "refresh_token": refresh,
            "token_expires_at": None,
            "tokens_issued_at": self.rfc3339(issued_at) if issued_at else None,
        }
        return self.event(type_name, **{**fields, **changes})

    async def link(self, account_id: str) -> None:
        linked = self.event(
            "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=account_id, is_default=True
        )
        assert await self.h.send(linked) == "handled"

    async def post(self, platform: str) -> str:
        """A drafted and paid post for the brand on one platform; its run id."""
        pending, run = str(uuid.uuid4()), str(uuid.uuid4())
        drafted = self.event(
            "PendingPostCreated",
            pending_post_id=pending,
            run_id=run,
            brand_profile_id=self.brand,
            platforms=[platform],
            requires_approval=False,
            content=f"post {run}",
            media=[],
        )
        assert await self.h.send(drafted, "content.events") == "handled"
        debited = self.event("CreditsDebited", pending_post_id=pending, run_id=run)
        assert await self.h.send(debited, "billing.events") == "handled"
        return run


@dataclass(frozen=True)
class Rotation:
    """The keys after a rotation: the old key 1 and a newer key 2."""

    token_keys: str
    tokens: AccountTokens


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("publisher", MIGRATIONS), max_size=8)
    yield database
    await database.close()


@pytest.fixture
def harness_with(db: Database) -> Callable[..., Harness]:
    """A harness with the given adapters (and settings), under key 1 unless another keyring is given."""

    def make(
        adapters: dict[str, PlatformAdapter], settings: PublisherSettings = SETTINGS, ring: Keyring | None = None
    ) -> Harness:
        return Harness(db, adapters, ring or keyring(KEY_1), settings)

    return make


@pytest.fixture
def harness(harness_with: Callable[..., Harness]) -> Harness:
    return harness_with({p.value: SandboxAdapter(p.value) for p in Platform})


@pytest.fixture
def rotation() -> Rotation:
    return Rotation(f"1:{KEY_1},2:{KEY_2}", AccountTokens(keyring(KEY_1, KEY_2)))


@pytest.fixture
async def publisher(database_url: str, kafka: KafkaSettings) -> AsyncIterator[ServiceRuntime]:
    """The publisher as a service on the test's Kafka (sandbox platforms, key RUNTIME_KEYRING)."""
    service = definition(
        settings=PublisherSettings(poll_interval_s=0.5),
        adapters={p.value: SandboxAdapter(p.value) for p in Platform},
        keyring=RUNTIME_KEYRING,
    )
    settings = ServiceSettings(
        name="publisher",
        database_url=database_url,
        http_port=18084,
        handler_backoff_initial_s=0.01,
        outbox_poll_interval_s=0.2,
    )
    async with ServiceRuntime(service, settings=settings, kafka=kafka) as runtime:
        yield runtime


@pytest.fixture
def transit_token() -> Callable[[str, str, str], str]:
    """A token as upstream sends it to the `publisher` fixture's service: encrypted under its key,
    bound to the organization and the account."""

    def encrypt(plaintext: str, org: str, account: str) -> str:
        return str(RUNTIME_KEYRING.encrypt(plaintext, associated_data=account_transit_aad(org, account)))

    return encrypt
