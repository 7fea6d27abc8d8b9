"""Angle choice: explores every angle, then favours the ones that earn more, deterministically per run."""

from __future__ import annotations

import random
from collections import Counter

from hopcast_content.domain.angles import ANGLES, AngleStats, choose_angle
from hopcast_shared.contract import Angle

TRUE_RATES = {a: 0.02 for a in ANGLES} | {Angle.STORYTELLING: 0.06}


def test_without_data_every_angle_is_explored_with_a_reason() -> None:
    picks = Counter(choose_angle({}, random.Random(seed)).angle for seed in range(600))
    assert set(picks) == set(ANGLES)
    assert min(picks.values()) > 600 / 6 * 0.6
    choice = choose_angle({}, random.Random(1))
    assert "explored" in choice.reason and choice.angle.value.replace("_", " ").lower() in choice.reason


def test_the_same_seed_chooses_the_same_angle() -> None:
    stats = {Angle.EDUCATIONAL: AngleStats(3, 0.05, 0.01), Angle.PROMOTIONAL: AngleStats(5, 0.01, 0.005)}
    assert choose_angle(stats, random.Random(99)) == choose_angle(stats, random.Random(99))


def test_learning_converges_on_the_angle_that_earns_most_while_still_exploring() -> None:
    rng = random.Random(2027)
    noise = random.Random(7)
    observed: dict[Angle, list[float]] = {a: [] for a in ANGLES}
    picks: list[Angle] = []
    for _ in range(400):
        stats = {
            a: AngleStats(len(v), sum(v) / len(v), (sum((x - sum(v) / len(v)) ** 2 for x in v) / len(v)) ** 0.5)
            for a, v in observed.items()
            if v
        }
        angle = choose_angle(stats, rng).angle
        picks.append(angle)
        observed[angle].append(max(0.0, noise.gauss(TRUE_RATES[angle], 0.01)))
    last = Counter(picks[-100:])
    assert last[Angle.STORYTELLING] >= 70  # mostly the best one...
    assert all(observed[a] for a in ANGLES)  # ...after every angle was tried
    best = choose_angle({a: AngleStats(len(v), sum(v) / len(v)) for a, v in observed.items()}, random.Random(0))
    if best.angle is Angle.STORYTELLING:
        assert "Best performer" in best.reason


def test_an_untried_angle_says_it_is_exploring() -> None:
    stats = {a: AngleStats(50, 0.02, 0.001) for a in ANGLES if a is not Angle.SOCIAL_PROOF}
    for seed in range(200):
        choice = choose_angle(stats, random.Random(seed))
        if choice.angle is Angle.SOCIAL_PROOF:
            assert "Not tried yet" in choice.reason
            break
    else:
        raise AssertionError("an untried angle never came up")


def test_close_angles_both_keep_being_chosen() -> None:
    stats = {a: AngleStats(20, 0.02, 0.01) for a in ANGLES}
    stats[Angle.EDUCATIONAL] = AngleStats(20, 0.030, 0.01)
    stats[Angle.USER_BENEFIT] = AngleStats(20, 0.028, 0.01)
    picks = Counter(choose_angle(stats, random.Random(seed)).angle for seed in range(1000))
    assert picks[Angle.EDUCATIONAL] > picks[Angle.USER_BENEFIT] > 150
    assert picks.most_common(1)[0][0] is Angle.EDUCATIONAL
