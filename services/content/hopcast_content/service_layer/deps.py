"""What content's handlers need besides the event: settings, the embedder, the generator,
and the repositories over the transaction's connection (fakes in unit tests). Built once, in
bootstrap.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hopcast_content.adapters.dedup import Duplicates
from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts
from hopcast_content.adapters.projections import Projections
from hopcast_content.adapters.runs import Runs
from hopcast_content.config import ContentSettings
from hopcast_content.domain.drafting import Generator
from hopcast_content.domain.embedding import Embedder
from hopcast_shared.db import Conn
from hopcast_shared.projections import TenantProjection


@dataclass(frozen=True)
class ContentDeps:
    settings: ContentSettings
    embedder: Embedder
    generator: Generator
    projections: Callable[[Conn], Projections] = Projections
    materials: Callable[[Conn], Materials] = Materials
    runs: Callable[[Conn], Runs] = Runs
    posts: Callable[[Conn], Posts] = Posts
    duplicates: Callable[[Conn], Duplicates] = Duplicates
    # The kernel's organization and brand projection (hopcast_shared.tenants).
    tenants: Callable[[Conn], TenantProjection] = TenantProjection

    def __post_init__(self) -> None:
        if self.embedder.dim != self.settings.embedding_dim:
            raise ValueError(
                f"embedder makes {self.embedder.dim} dimensions, CONTENT_EMBEDDING_DIM is {self.settings.embedding_dim}"
            )
