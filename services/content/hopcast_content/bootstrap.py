"""Wiring: settings, the embedder and the generator into content's dependencies, its dispatch
map bound to them, consumed topics, background loops and HTTP routes; and the migrations
rendered for the configured dimension."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hopcast_content.adapters.embedders import make_embedder
from hopcast_content.adapters.generators import make_generator
from hopcast_content.adapters.purge import purge as purge_content
from hopcast_content.config import ContentSettings
from hopcast_content.domain.drafting import Generator
from hopcast_content.domain.embedding import Embedder
from hopcast_content.entrypoints.http import routes
from hopcast_content.entrypoints.processing import material_processing_loop
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_shared.db import Conn
from hopcast_shared.dispatch import bind
from hopcast_shared.retention import Purge, purge_loop
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, PUBLISHER, SCHEDULER, UPSTREAM

MIGRATION_TEMPLATES = Path(__file__).parent / "migrations"
DIM_PLACEHOLDER = "{{EMBEDDING_DIM}}"
# PostPublished travels on publisher.events and analytics.events with one id; the consumer
# takes it from publisher.events and ignores the copy (`consumer.taken_on`). billing.events
# carries nothing content needs.
CONSUMES = [UPSTREAM, SCHEDULER, PUBLISHER, ANALYTICS]


def render_migrations(embedding_dim: int, target: Path | None = None) -> Path:
    """The migrations with the vector dimension filled in, in a folder of their own (one per
    dimension and template version). The rendered text is what the runner checksums, so a
    database migrated with another dimension refuses to start."""
    texts = {p.name: p.read_text() for p in sorted(MIGRATION_TEMPLATES.glob("*.sql"))}
    digest = hashlib.sha256("".join(texts.values()).encode()).hexdigest()[:12]
    folder = target or Path(tempfile.gettempdir()) / "hopcast-content-migrations" / f"{embedding_dim}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        rendered = text.replace(DIM_PLACEHOLDER, str(int(embedding_dim)))
        path = folder / name
        if not path.exists() or path.read_text() != rendered:
            tmp = folder / f".{name}.tmp"
            tmp.write_text(rendered)
            tmp.replace(path)
    return folder


def purge_for(settings: ContentSettings) -> Purge:
    """Content's purge at a retention, keeping drafts and embeddings for the duplicate window too."""

    async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
        return await purge_content(conn, older_than_days, window_days=settings.dedup_window_days)

    return purge


async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
    """Content's purge under the configured settings (entry-point group `hopcast.purge`)."""
    return await purge_content(conn, older_than_days, window_days=load(ContentSettings).dedup_window_days)


def build_deps(
    settings: ContentSettings | None = None, *, embedder: Embedder | None = None, generator: Generator | None = None
) -> ContentDeps:
    settings = settings or load(ContentSettings)
    return ContentDeps(settings, embedder or make_embedder(settings), generator or make_generator(settings))


def definition(deps: ContentDeps | None = None) -> ServiceDefinition:
    deps = deps or build_deps()
    settings = deps.settings
    return ServiceDefinition(
        name="content",
        consumes=CONSUMES,
        handlers=bind(DISPATCH, deps),
        migrations_dir=render_migrations(settings.embedding_dim),
        background=[material_processing_loop(deps), purge_loop(purge_for(settings), settings.purge_interval_s)],
        http_routes=lambda runtime: routes(runtime, settings),
    )
