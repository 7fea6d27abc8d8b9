"""A material's lifecycle and the rules of a run's outcome, as plain decisions.

UPLOADED -> PROCESSING -> READY (embedded) or FAILED (with the reason); READY -> USED once
its uses reach max_uses; ARCHIVED is kept and never selected. Soft delete is orthogonal
(deleted_at), so a restored material comes back in the status it had.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hopcast_content.domain.drafting import MaterialText
from hopcast_shared.contract import RunOutcome, SkipReason


class MaterialStatus(StrEnum):
    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"
    USED = "USED"
    ARCHIVED = "ARCHIVED"


@dataclass(frozen=True)
class Material:
    """A material as content keeps it: its text, whose it is, and its own embedding once it
    has one (when it is read to draft from)."""

    text: MaterialText
    organization_id: uuid.UUID
    brand_profile_id: uuid.UUID
    embedding: Sequence[float] | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.text.material_id


def processing_problem(material: MaterialText) -> str | None:
    """Why a material cannot become READY, or None: something to draft a post from is needed."""
    if not material.text.strip():
        if material.type in ("TEXT", "URL"):
            return f"a {material.type} material needs a title or a body to draft from"
        if not material.media_urls:
            return "no title, no body and no media to draft from"
    return None


def embedding_text(material: MaterialText) -> str:
    """What a material is embedded as: its title and body, else its media links."""
    return material.text if material.text.strip() else " ".join(material.media_urls)


def status_after_use(usage_count: int, max_uses: int | None) -> MaterialStatus:
    """READY while uses remain (max_uses None: unlimited), USED once they reach max_uses."""
    if max_uses is not None and usage_count >= max_uses:
        return MaterialStatus.USED
    return MaterialStatus.READY


SKIP_OUTCOMES: dict[SkipReason, RunOutcome] = {
    SkipReason.NO_READY_MATERIAL: RunOutcome.NO_MATERIAL,
    SkipReason.ALL_CANDIDATES_DUPLICATE: RunOutcome.SKIPPED_DUPLICATE,
    SkipReason.BRAND_INACTIVE: RunOutcome.BRAND_INACTIVE,
    SkipReason.ORGANIZATION_INACTIVE: RunOutcome.ORGANIZATION_INACTIVE,
    SkipReason.ALL_PLATFORMS_LEFT_OUT: RunOutcome.ALL_PLATFORMS_LEFT_OUT,
}

# Outcomes of a run that published at least one platform: the material was used.
PUBLISHED_OUTCOMES = frozenset({RunOutcome.PUBLISHED, RunOutcome.PARTIALLY_PUBLISHED})


def run_rng(run_id: uuid.UUID) -> random.Random:
    """The run's own random source: a redelivered run makes the same choices."""
    return random.Random(run_id.int)
