"""Forward-only SQL migrations, applied under an advisory lock: at a service's start, or by
`hopcast migrate apply SERVICE` (a Kubernetes init container), after which the serving
process only waits for the schema it needs (`missing_migrations`).

No well-kept migration tool speaks asyncpg (yoyo and alembic want a sync driver), so this
is a small runner: numbered `NNNN_name.sql` files per component, each applied once in its
own transaction, recorded with a checksum so an edited, already-applied file is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# One cluster-wide lock for migrations: replicas starting together apply them once.
_LOCK_KEY = 0x686F7063_6D696772  # "hopcmigr"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, directory: Path) -> list[Migration]:
    """Read `NNNN_name.sql` files; versions must run 1, 2, 3... without gaps."""
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(component, int(m.group(1)), m.group(2), path.read_text()))
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(f"{component}: expected migration {expected:04d}, found {mig.version:04d}")
    return found


def kernel_migrations() -> list[Migration]:
    """The kernel's own tables (outbox, inbox, pgvector), applied first in every service database."""
    directory = Path(str(resources.files("hopcast_shared") / "migrations"))
    return load_migrations("kernel", directory)


def tenant_migrations() -> list[Migration]:
    """The organization and brand projection's tables (hopcast_shared.tenants), applied after the
    service's own migrations: the services' first migrations made these tables before the kernel
    owned them, and these bring them to the kernel's shape."""
    directory = Path(str(resources.files("hopcast_shared") / "migrations" / "tenants"))
    return load_migrations("tenants", directory)


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Apply what is not applied yet; returns the migrations applied now."""
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        # Only when missing: the CREATE needs a privilege on the schema that a runtime role
        # without DDL rights (deploy/sql/roles.sql) lacks, even with IF NOT EXISTS.
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            await conn.execute(
                """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                component  text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )
            """
            )
        rows = await conn.fetch("SELECT component, version, name, checksum FROM schema_migrations")
        done = {(r["component"], r["version"]): r for r in rows}
        for mig in migrations:
            row = done.get((mig.component, mig.version))
            if row is not None:
                if row["checksum"] != mig.checksum:
                    raise MigrationError(
                        f"{mig.component} migration {mig.version:04d}_{mig.name} was changed after it was "
                        "applied; migrations are forward-only: add a new one instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    mig.component,
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
            applied_now.append(mig)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def missing_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Those of `migrations` the database has not applied yet (all, before any was). Raises
    MigrationError when an applied one differs from the code's (an edited file, or code of
    another line of releases): waiting would not fix that."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return list(migrations)
    rows = await conn.fetch("SELECT component, version, checksum FROM schema_migrations")
    applied = {(r["component"], r["version"]): r["checksum"] for r in rows}
    missing = []
    for mig in migrations:
        checksum = applied.get((mig.component, mig.version))
        if checksum is None:
            missing.append(mig)
        elif checksum != mig.checksum:
            raise MigrationError(
                f"{mig.component} migration {mig.version:04d}_{mig.name} in the database differs from this code's"
            )
    return missing
