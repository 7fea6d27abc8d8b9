"""Each strategy's choices, and pillar balance converging on the brand's targets."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hopcast_content.domain.selection import (
    UNASSIGNED,
    Candidate,
    MaterialStrategy,
    PillarTarget,
    order_candidates,
    pillar_deficits,
    pillar_named,
)

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def material(n: int, *, uses: int = 0, last: int | None = None, pillar: str | None = None, rate: float | None = None):
    return Candidate(
        material_id=uuid.UUID(int=n),
        usage_count=uses,
        last_used_at=T0 + timedelta(hours=last) if last is not None else None,
        created_at=T0 + timedelta(minutes=n),
        content_pillar=pillar,
        engagement=rate,
    )


def ids(candidates: list[Candidate]) -> list[int]:
    return [c.material_id.int for c in candidates]


def test_round_robin_takes_fewest_uses_then_least_recently_used_then_oldest() -> None:
    pool = [material(1, uses=2, last=1), material(2, uses=1, last=5), material(3, uses=1, last=2), material(4)]
    pool.append(material(5))  # never used, newer than 4
    assert ids(order_candidates(MaterialStrategy.ROUND_ROBIN, pool, random.Random(1))) == [4, 5, 3, 2, 1]


def test_round_robin_cycles_through_every_material_before_repeating() -> None:
    pool = {n: material(n) for n in range(1, 6)}
    picks = []
    for hour in range(10):
        first = order_candidates(MaterialStrategy.ROUND_ROBIN, list(pool.values()), random.Random(0))[0]
        picks.append(first.material_id.int)
        n = first.material_id.int
        pool[n] = material(n, uses=pool[n].usage_count + 1, last=hour)
    assert sorted(picks[:5]) == [1, 2, 3, 4, 5] and picks[5:] == picks[:5]


def test_random_is_a_permutation_that_depends_only_on_the_seed() -> None:
    pool = [material(n) for n in range(1, 21)]
    a = order_candidates(MaterialStrategy.RANDOM, pool, random.Random(42))
    b = order_candidates(MaterialStrategy.RANDOM, list(reversed(pool)), random.Random(42))
    c = order_candidates(MaterialStrategy.RANDOM, pool, random.Random(43))
    assert ids(a) == ids(b)  # the order the rows came in does not matter
    assert sorted(ids(a)) == list(range(1, 21)) and ids(a) != ids(c)
    firsts = Counter(
        order_candidates(MaterialStrategy.RANDOM, pool, random.Random(s))[0].material_id.int for s in range(4000)
    )
    assert len(firsts) == 20 and max(firsts.values()) < 2.0 * 4000 / 20  # roughly uniform


def test_weighted_picks_materials_in_proportion_to_their_engagement() -> None:
    pool = [material(1, rate=0.06), material(2, rate=0.03), material(3, rate=0.01), material(4)]
    firsts = Counter(
        order_candidates(MaterialStrategy.WEIGHTED, pool, random.Random(seed))[0].material_id.int
        for seed in range(20_000)
    )
    # Weights 0.06, 0.03, 0.01 and the mean 0.0333 for the unrated one: total 0.1333.
    assert abs(firsts[1] / 20_000 - 0.45) < 0.02
    assert abs(firsts[2] / 20_000 - 0.225) < 0.02
    assert abs(firsts[3] / 20_000 - 0.075) < 0.015
    assert abs(firsts[4] / 20_000 - 0.25) < 0.02  # a new material still comes up
    assert firsts[1] > firsts[2] > firsts[3]


def test_target_pillar_comes_first_whatever_the_strategy() -> None:
    pool = [material(1, pillar="offers"), material(2, pillar="Brewing tips", uses=5), material(3)]
    for strategy in MaterialStrategy:
        ordered = order_candidates(
            strategy,
            pool,
            random.Random(7),
            targets=[PillarTarget("brewing tips", 50), PillarTarget("offers", 50)],
            target_pillar="brewing tips",
        )
        assert ordered[0].material_id.int == 2, strategy


BRAND_TARGETS = [PillarTarget("brewing tips", 50), PillarTarget("behind the scenes", 30), PillarTarget("offers", 20)]


def test_pillar_balanced_takes_the_pillar_furthest_below_its_target() -> None:
    pool = [material(1, pillar="brewing tips"), material(2, pillar="behind the scenes"), material(3, pillar="offers")]
    recent = {"brewing tips": 5, "behind the scenes": 1, "offers": 2}  # 62%, 12%, 25% of 8
    ordered = order_candidates(
        MaterialStrategy.PILLAR_BALANCED, pool, random.Random(0), targets=BRAND_TARGETS, recent_pillars=recent
    )
    assert ids(ordered) == [2, 3, 1]
    deficits = pillar_deficits(BRAND_TARGETS, recent)
    assert max(deficits, key=lambda k: deficits[k]) == "behind the scenes"


def test_pillar_balance_converges_on_the_targets() -> None:
    pool = [material(n, pillar=p) for n, p in enumerate(["brewing tips", "behind the scenes", "offers"] * 3, 1)]
    counts: Counter[str] = Counter()
    for run in range(200):
        first = order_candidates(
            MaterialStrategy.PILLAR_BALANCED, pool, random.Random(run), targets=BRAND_TARGETS, recent_pillars=counts
        )[0]
        counts[pillar_named(first.content_pillar, BRAND_TARGETS)] += 1
        if run in (9, 49, 199):
            total = run + 1
            for t in BRAND_TARGETS:
                # Within one post of the exact share at every checkpoint.
                assert abs(counts[t.name] - t.percentage / 100 * total) <= 1.0, (run, counts)


def test_unassigned_share_and_materials_without_pillar() -> None:
    targets = [PillarTarget("tips", 60)]
    pool = [material(1, pillar="tips"), material(2, pillar=None), material(3, pillar="unknown pillar")]
    counts: Counter[str] = Counter()
    for run in range(100):
        first = order_candidates(
            MaterialStrategy.PILLAR_BALANCED, pool, random.Random(run), targets=targets, recent_pillars=counts
        )[0]
        counts[pillar_named(first.content_pillar, targets)] += 1
    assert counts["tips"] == 60 and counts[UNASSIGNED] == 40


def test_pillar_balanced_falls_back_to_other_pillars_when_the_wanted_one_has_nothing() -> None:
    pool = [material(1, pillar="offers"), material(2, pillar="brewing tips")]
    recent = {"brewing tips": 0, "behind the scenes": 0, "offers": 0}
    ordered = order_candidates(
        MaterialStrategy.PILLAR_BALANCED, pool, random.Random(0), targets=BRAND_TARGETS, recent_pillars=recent
    )
    assert ids(ordered) == [2, 1]  # behind the scenes is furthest below but has no material
