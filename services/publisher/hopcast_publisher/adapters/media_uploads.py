"""Where each account's media uploads are remembered (migration 0008), so that a file is
uploaded once per account and the upload reused on a retry, after a lost answer or a crash,
and by a later post of the same account where the platform allows it.

Keyed by organization, account and an upload key (`upload_key`): the file's sha256, plus
what the platform binds to the upload: the alt text where it is set on the upload (Mastodon's
description, X's metadata), and, for Mastodon, whose media attach to one status only, the
post's idempotency key. `remember` is first-writer-wins across replicas: two replicas that
uploaded the same file at once both end up using the first stored reference (the other
upload is never attached, and the platform drops it). An expired row is replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hopcast_shared.db import Database


@dataclass(frozen=True)
class UploadKey:
    organization_id: uuid.UUID
    social_account_id: uuid.UUID
    platform: str
    upload_key: str
    content_sha256: str


def upload_key(content_sha256: str, *bound: str | None) -> str:
    """The key of an upload: the bytes' digest, and a digest of what else the platform binds to
    the upload (alt text, the post), so a different alt text or post is a different upload."""
    if not bound:
        return content_sha256
    extra = hashlib.sha256(json.dumps([b or "" for b in bound]).encode()).hexdigest()[:32]
    return f"{content_sha256}:{extra}"


class MediaUploads(ABC):
    """The remembered uploads of accounts."""

    @abstractmethod
    async def find(self, key: UploadKey) -> dict[str, Any] | None:
        """The platform's reference of a live upload of this key, or None."""

    @abstractmethod
    async def remember(self, key: UploadKey, remote: dict[str, Any], ttl: timedelta) -> dict[str, Any]:
        """Store an upload's reference for `ttl`; returns the reference to use: this one, or
        the one another replica stored first."""


class MemoryMediaUploads(MediaUploads):
    """In one process (unit tests, local trials without a database)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[uuid.UUID, uuid.UUID, str], tuple[dict[str, Any], datetime]] = {}
        self._lock = asyncio.Lock()

    async def find(self, key: UploadKey) -> dict[str, Any] | None:
        row = self.rows.get((key.organization_id, key.social_account_id, key.upload_key))
        return row[0] if row is not None and row[1] > datetime.now(UTC) else None

    async def remember(self, key: UploadKey, remote: dict[str, Any], ttl: timedelta) -> dict[str, Any]:
        async with self._lock:
            existing = await self.find(key)
            if existing is not None:
                return existing
            self.rows[(key.organization_id, key.social_account_id, key.upload_key)] = (remote, datetime.now(UTC) + ttl)
            return remote


class PostgresMediaUploads(MediaUploads):
    """In the publisher's database, shared by every replica. Built before the service has its
    database (the adapters are), and bound to it when the publishing loop starts."""

    def __init__(self, db: Database | None = None) -> None:
        self._bound = db

    def bind(self, db: Database) -> None:
        self._bound = db

    @property
    def _db(self) -> Database:
        if self._bound is None:
            raise RuntimeError("media uploads used before the publisher's database was bound")
        return self._bound

    async def find(self, key: UploadKey) -> dict[str, Any] | None:
        async with self._db.transaction() as conn:
            remote = await conn.fetchval(
                """
                SELECT remote FROM media_uploads
                WHERE organization_id = $1 AND social_account_id = $2 AND upload_key = $3
                  AND expires_at > now()
                """,
                key.organization_id,
                key.social_account_id,
                key.upload_key,
            )
        return _decoded(remote)

    async def remember(self, key: UploadKey, remote: dict[str, Any], ttl: timedelta) -> dict[str, Any]:
        async with self._db.transaction() as conn:
            # First writer wins; an expired row is replaced. ON CONFLICT locks the row, so a
            # replica racing this one either inserts first or reads what this one stored.
            stored = await conn.fetchval(
                """
                INSERT INTO media_uploads AS m
                    (organization_id, social_account_id, upload_key, platform, content_sha256, remote, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb, now() + make_interval(secs => $7))
                ON CONFLICT (organization_id, social_account_id, upload_key) DO UPDATE
                    SET remote = EXCLUDED.remote, uploaded_at = now(), expires_at = EXCLUDED.expires_at,
                        content_sha256 = EXCLUDED.content_sha256
                    WHERE m.expires_at <= now()
                RETURNING remote
                """,
                key.organization_id,
                key.social_account_id,
                key.upload_key,
                key.platform,
                key.content_sha256,
                json.dumps(remote),
                ttl.total_seconds(),
            )
            if stored is None:
                stored = await conn.fetchval(
                    """
                    SELECT remote FROM media_uploads
                    WHERE organization_id = $1 AND social_account_id = $2 AND upload_key = $3
                    """,
                    key.organization_id,
                    key.social_account_id,
                    key.upload_key,
                )
        return _decoded(stored) or remote


def _decoded(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else None
