"""What content knows of upstream's brands and schedules, as it keeps them: a brand's voice
and pillar targets, and whether it may draft for an organization; a schedule's strategy and
generation mode."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hopcast_content.domain.drafting import BrandVoice
from hopcast_content.domain.selection import PillarTarget
from hopcast_shared.contract import MaterialStrategy


@dataclass(frozen=True)
class Brand:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    profile: Mapping[str, Any]
    """The BrandProfile event's fields but its id and name (pillars, tone, language rules...)."""
    deleted: bool = False

    def active_for(self, org_id: uuid.UUID) -> bool:
        """The brand is the organization's own and is not deleted."""
        return self.organization_id == org_id and not self.deleted

    def pillar_targets(self) -> list[PillarTarget]:
        return [PillarTarget(p["name"], float(p["percentage"])) for p in self.profile.get("content_pillars") or ()]

    def voice(self) -> BrandVoice:
        return BrandVoice.from_profile(self.name, dict(self.profile))


@dataclass(frozen=True)
class ScheduleSettings:
    """What a run reads of its schedule (a schedule content does not know runs round-robin,
    autopilot)."""

    strategy: MaterialStrategy = MaterialStrategy.ROUND_ROBIN
    manual: bool = False
    approval_ttl_minutes: int = 2_880
