"""What the runs of one ScheduleDue batch share: what they read, loaded once, and what each
leaves for the next."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hopcast_content.adapters.runs import Runs
from hopcast_content.domain.angles import AngleStats
from hopcast_content.domain.brands import Brand, ScheduleSettings
from hopcast_content.domain.drafting import Draft, DraftRequest
from hopcast_content.domain.embedding import Embedding
from hopcast_content.domain.materials import Material
from hopcast_content.domain.selection import Candidate
from hopcast_shared.contract import Angle


@dataclass
class RunBatch:
    """What the runs of one batch read, loaded once; and what its earlier runs leave for the
    later ones, so that they decide as if handled one after another: a material drafted is
    in flight (not selectable), a draft counts for its brand's pillars, and the duplicate
    check of a later run of the same organization sees it (written before that check)."""

    runs: Runs
    since: datetime
    deleted_organizations: set[uuid.UUID]
    brands: dict[uuid.UUID, Brand]
    candidates: dict[uuid.UUID, list[Candidate]]
    schedules: dict[tuple[uuid.UUID, uuid.UUID], ScheduleSettings]
    recent_pillars: dict[uuid.UUID, dict[str | None, int]]
    angle_stats: dict[uuid.UUID, dict[Angle, AngleStats]]
    results: dict[uuid.UUID, str] = field(default_factory=dict)
    """Each handled run's result: DRAFTED or the skip reason."""
    in_flight: set[uuid.UUID] = field(default_factory=set)
    unwritten: list[tuple[dict[str, Any], Embedding]] = field(default_factory=list)
    materials: dict[uuid.UUID, Material] = field(default_factory=dict)
    """The materials read for drafting, by id (read together ahead of the runs)."""
    drafts: dict[tuple[uuid.UUID, DraftRequest], Draft] = field(default_factory=dict)
    """Each run's finished draft of a request: written once, whether ahead or by the run."""
    vectors: dict[str, list[float]] = field(default_factory=dict)
    """Each draft text's vector: the batch's first drafts are embedded in one call ahead."""

    def schedule(self, schedule_id: uuid.UUID, org_id: uuid.UUID) -> ScheduleSettings:
        return self.schedules.get((schedule_id, org_id)) or ScheduleSettings()

    def selectable(self, brand_id: uuid.UUID) -> list[Candidate]:
        return [c for c in self.candidates.get(brand_id, ()) if c.material_id not in self.in_flight]

    def drafted(self, post: dict[str, Any], embedding: Embedding) -> None:
        self.taken(post["brand_profile_id"], post["material_id"], post["content_pillar"])
        self.unwritten.append((post, embedding))

    def taken(self, brand_id: uuid.UUID, material_id: uuid.UUID, pillar: str | None) -> None:
        """A material drafted: in flight for the later runs, and one more post of its pillar."""
        self.in_flight.add(material_id)
        pillars = self.recent_pillars.get(brand_id)
        if pillars is not None:
            pillars[pillar] = pillars.get(pillar, 0) + 1

    @contextlib.contextmanager
    def supposing(self) -> Iterator[None]:
        """What the runs would take is worked out inside; what they really took is restored
        after (the materials in flight and the pillar counts)."""
        in_flight, pillars = set(self.in_flight), copy.deepcopy(self.recent_pillars)
        try:
            yield
        finally:
            self.in_flight, self.recent_pillars = in_flight, pillars

    async def write_drafts(self, organization_id: uuid.UUID | None = None) -> None:
        """Write the drafts not written yet: all of them, or (with an organization) all of
        them if one is that organization's, else none."""
        if organization_id is not None and all(p["organization_id"] != organization_id for p, _ in self.unwritten):
            return
        await self.runs.insert_drafts([post for post, _ in self.unwritten], [e for _, e in self.unwritten])
        self.unwritten.clear()
