"""The similarity bands of DESIGN.md and the one decision taken on them: above the
threshold (0.85) a draft is too similar to a recent post of the organization and the run
tries the next material; below it the draft proceeds, its score recorded."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

THRESHOLD = 0.85


class Band(StrEnum):
    UNIQUE = "unique"  # 0.0 - 0.5
    DIFFERENT_ENOUGH = "different_enough"  # 0.5 - 0.7
    SIMILAR = "similar"  # 0.7 - 0.85: proceed, record the score
    TOO_SIMILAR = "too_similar"  # above 0.85: skip, pick another material


def band(similarity: float, threshold: float = THRESHOLD) -> Band:
    if similarity > threshold:
        return Band.TOO_SIMILAR
    if similarity > 0.7:
        return Band.SIMILAR
    if similarity > 0.5:
        return Band.DIFFERENT_ENOUGH
    return Band.UNIQUE


@dataclass(frozen=True)
class DraftToCheck:
    """A draft to check, with its material: their vectors and the hashes of their texts."""

    material_id: uuid.UUID
    draft_vector: Sequence[float]
    draft_hash: str
    material_hash: str
    material_vector: Sequence[float] | None = None


@dataclass(frozen=True)
class Verdict:
    """How close a candidate came to the organization's recent posts."""

    draft_similarity: float
    """Highest cosine similarity of the draft to the organization's drafts and posts in the window."""
    material_similarity: float
    """Highest cosine similarity of the material to the materials drafted in the window."""
    exact_copy: bool = False
    """The hash fast path found the same normalised text (draft or material)."""

    def too_similar(self, threshold: float = THRESHOLD) -> bool:
        return self.exact_copy or max(self.draft_similarity, self.material_similarity) > threshold
