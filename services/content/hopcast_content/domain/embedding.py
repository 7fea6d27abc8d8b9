"""What an embedder is, and the vector arithmetic the duplicate check relies on: every vector
is L2-normalised, so cosine similarity is a dot product; exact copies are recognised by the
hash of their normalised text before any vector is compared."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

_SPACE = re.compile(r"\s+")


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of `dim` dimensions."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class Embedding:
    """A vector content keeps for the duplicate check: a material's, a draft's (PENDING_POST)
    or a published POST's, with the hashes of its text and of its material's."""

    organization_id: uuid.UUID
    brand_profile_id: uuid.UUID
    kind: str
    source_id: uuid.UUID
    material_id: uuid.UUID
    content_hash: str
    material_hash: str
    embedding: Sequence[float]
    created_at: datetime | None = None


class EmbeddingError(RuntimeError):
    """The embedder could not embed (a remote API failed, a wrong dimension came back)."""


def normalise_text(text: str) -> str:
    """The text as compared: Unicode-normalised, case-folded, whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def content_hash(text: str) -> str:
    """Equal for texts that differ only in case, Unicode form or whitespace."""
    return hashlib.sha256(normalise_text(text).encode()).hexdigest()


def l2_normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise EmbeddingError("cannot normalise a zero or non-finite vector")
    return [x / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (any norm)."""
    if len(a) != len(b):
        raise ValueError(f"dimensions differ: {len(a)} and {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (na * nb)))
