"""Which material a run drafts from: the schedule's strategy puts the brand's selectable
materials in the order they are tried (the first is the pick; the next ones are tried when
a draft turns out too similar to a recent post).

- round_robin: fewest uses first, then least recently used (never used first), then oldest.
- random: a shuffle.
- weighted: a weighted shuffle; a material's weight is the mean engagement rate its posts
  earned (materials without posts weigh the brand's mean, so new ones come up too).
- pillar_balanced: the pillar furthest below its target share over the last 30 days first
  (ScheduleDue's target_pillar wins when set), round-robin within a pillar.

Randomness comes from a `random.Random` the caller seeds with the run id, so a redelivered
ScheduleDue orders the same way.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hopcast_content.domain.drafting import MediaRef
from hopcast_shared.contract import MaterialStrategy

# Materials without a pillar (or with one the brand does not list) share what the brand's
# percentages leave unassigned.
UNASSIGNED = ""
_NEVER = datetime.min


@dataclass(frozen=True)
class Candidate:
    """A selectable material, with what the strategies look at."""

    material_id: uuid.UUID
    usage_count: int
    last_used_at: datetime | None
    created_at: datetime
    content_pillar: str | None = None
    engagement: float | None = None
    """Mean engagement rate of the material's posts; None when it has none yet."""
    media: tuple[MediaRef, ...] = ()
    """Its images or video: which of a run's platforms it can go to (`media_needs.py`)."""


@dataclass(frozen=True)
class PillarTarget:
    name: str
    percentage: float


def _round_robin_key(c: Candidate) -> tuple[int, datetime, datetime, str]:
    last = c.last_used_at.replace(tzinfo=None) if c.last_used_at else _NEVER
    return (c.usage_count, last, c.created_at.replace(tzinfo=None), str(c.material_id))


def round_robin(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=_round_robin_key)


def shuffled(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    # Sorted first so the order does not depend on how the database returned the rows.
    items = sorted(candidates, key=lambda c: str(c.material_id))
    rng.shuffle(items)
    return items


def weighted(candidates: Sequence[Candidate], rng: random.Random, *, floor: float = 0.001) -> list[Candidate]:
    """A weighted shuffle (Efraimidis-Spirakis: key u^(1/w), largest first): P(first) is
    proportional to the weight. Weights: mean engagement, the brand's mean for materials
    without posts, never below `floor` so every material keeps a chance."""
    rated = [c.engagement for c in candidates if c.engagement is not None]
    default = sum(rated) / len(rated) if rated else 1.0
    items = sorted(candidates, key=lambda c: str(c.material_id))
    keyed = []
    for c in items:
        w = max(floor, c.engagement if c.engagement is not None else default)
        u = rng.random() or 1e-12
        keyed.append((math.log(u) / w, c))
    keyed.sort(key=lambda kc: kc[0], reverse=True)
    return [c for _, c in keyed]


def pillar_named(pillar: str | None, targets: Sequence[PillarTarget]) -> str:
    """The brand pillar a material's pillar counts for (matched case-insensitively), else UNASSIGNED."""
    if pillar:
        wanted = pillar.casefold()
        for t in targets:
            if t.name.casefold() == wanted:
                return t.name
    return UNASSIGNED


def pillar_of(candidate: Candidate, targets: Sequence[PillarTarget]) -> str:
    return pillar_named(candidate.content_pillar, targets)


def pillar_shares(targets: Sequence[PillarTarget]) -> dict[str, float]:
    """Target share (0-1) of each pillar, plus UNASSIGNED for what the percentages leave."""
    shares = {t.name: t.percentage / 100.0 for t in targets}
    rest = 1.0 - sum(shares.values())
    if rest > 1e-9 or not shares:
        shares[UNASSIGNED] = max(rest, 0.0) if shares else 1.0
    return shares


def pillar_deficits(targets: Sequence[PillarTarget], recent: Mapping[str, int]) -> dict[str, float]:
    """How many posts each pillar is short of its target, were one more post made now:
    share x (posts + 1) - its posts. The largest deficit is furthest below target."""
    shares = pillar_shares(targets)
    total = sum(recent.get(name, 0) for name in shares)
    return {name: share * (total + 1) - recent.get(name, 0) for name, share in shares.items()}


def pillar_balanced(
    candidates: Sequence[Candidate],
    targets: Sequence[PillarTarget],
    recent: Mapping[str, int],
    target_pillar: str | None = None,
) -> list[Candidate]:
    """Candidates of the pillar furthest below its target first, then the next pillar's;
    round-robin within each. `recent` counts the brand's drafts per pillar (last 30 days),
    keyed by the names `pillar_of` returns."""
    deficits = pillar_deficits(targets, recent)
    by_pillar: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_pillar.setdefault(pillar_of(c, targets), []).append(c)
    wanted = target_pillar.casefold() if target_pillar else None

    def rank(name: str) -> tuple[int, float, str]:
        first = 0 if wanted is not None and name.casefold() == wanted else 1
        return (first, -deficits.get(name, -math.inf), name)

    ordered: list[Candidate] = []
    for name in sorted(by_pillar, key=rank):
        ordered.extend(round_robin(by_pillar[name]))
    return ordered


def order_candidates(
    strategy: MaterialStrategy,
    candidates: Sequence[Candidate],
    rng: random.Random,
    *,
    targets: Sequence[PillarTarget] = (),
    recent_pillars: Mapping[str, int] | None = None,
    target_pillar: str | None = None,
) -> list[Candidate]:
    """The order in which a run tries the candidates under `strategy`; whatever the strategy,
    materials of ScheduleDue's target_pillar (when set) come first."""
    if strategy is MaterialStrategy.PILLAR_BALANCED:
        return pillar_balanced(candidates, targets, recent_pillars or {}, target_pillar)
    if strategy is MaterialStrategy.ROUND_ROBIN:
        ordered = round_robin(candidates)
    elif strategy is MaterialStrategy.RANDOM:
        ordered = shuffled(candidates, rng)
    else:
        ordered = weighted(candidates, rng)
    if target_pillar:
        wanted = target_pillar.casefold()
        ordered.sort(key=lambda c: (c.content_pillar or "").casefold() != wanted)  # stable
    return ordered
