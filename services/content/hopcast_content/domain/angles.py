"""Which of the six angles a post is written from, learned per brand from engagement.

Thompson sampling with a Gaussian model of each angle's engagement rate: an angle's rate
is believed to be around the mean its posts earned, shrunk toward the brand's mean by one
pseudo-post, with an uncertainty that narrows as posts accumulate. Each run draws one
plausible rate per angle and writes from the best draw, so angles that earn more are
chosen more often while untried or little-tried ones still come up (exploration). The
draw uses the run's seeded `random.Random`, so a redelivered run picks the same angle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from hopcast_shared.contract import Angle

ANGLES: tuple[Angle, ...] = tuple(Angle)

# With no engagement at all, a typical social engagement rate to center the prior on.
DEFAULT_RATE = 0.02
PRIOR_POSTS = 1.0

DESCRIPTIONS: dict[Angle, str] = {
    Angle.PRODUCT_FOCUS: "puts the product itself first",
    Angle.USER_BENEFIT: "leads with what the audience gains",
    Angle.STORYTELLING: "tells the story behind it",
    Angle.EDUCATIONAL: "teaches something useful",
    Angle.SOCIAL_PROOF: "leans on what others experienced",
    Angle.PROMOTIONAL: "makes an offer and asks for action",
}


@dataclass(frozen=True)
class AngleStats:
    """What the brand's published posts written from one angle earned."""

    posts: int
    mean_rate: float
    stddev: float = 0.0


@dataclass(frozen=True)
class AngleChoice:
    angle: Angle
    reason: str
    sampled: Mapping[Angle, float]


def _brand_mean(stats: Mapping[Angle, AngleStats]) -> tuple[float, float, int]:
    """(mean rate, spread, posts) over all of the brand's rated posts."""
    n = sum(s.posts for s in stats.values())
    if n == 0:
        return DEFAULT_RATE, DEFAULT_RATE, 0
    mean = sum(s.mean_rate * s.posts for s in stats.values()) / n
    # Pooled spread: within-angle variance plus between-angle variance.
    var = sum(s.posts * (s.stddev**2 + (s.mean_rate - mean) ** 2) for s in stats.values()) / n
    return mean, math.sqrt(var), n


def choose_angle(stats: Mapping[Angle, AngleStats], rng: random.Random) -> AngleChoice:
    """Draw a plausible engagement rate for each angle and write from the best one."""
    mean, spread, total = _brand_mean(stats)
    # The noise of one post's rate: at least a quarter of the mean, so a few lucky posts
    # do not end exploration.
    sigma = max(spread, 0.25 * mean, 1e-3)
    sampled: dict[Angle, float] = {}
    for angle in ANGLES:
        s = stats.get(angle, AngleStats(0, 0.0))
        n = s.posts
        mu = (PRIOR_POSTS * mean + n * s.mean_rate) / (PRIOR_POSTS + n)
        sampled[angle] = rng.gauss(mu, sigma / math.sqrt(PRIOR_POSTS + n))
    angle = max(ANGLES, key=lambda a: (sampled[a], -ANGLES.index(a)))
    return AngleChoice(angle, _reason(angle, stats, mean, total), sampled)


def _reason(angle: Angle, stats: Mapping[Angle, AngleStats], mean: float, total: int) -> str:
    what = f"{angle.value.replace('_', ' ').lower()} {DESCRIPTIONS[angle]}"
    if total == 0:
        return f"No engagement measured for this brand yet, so angles are explored evenly; this one {what}."
    s = stats.get(angle)
    if s is None or s.posts == 0:
        return f"Not tried yet for this brand (others average {mean:.1%} engagement): exploring it; it {what}."
    tried = {a: v for a, v in stats.items() if v.posts > 0}
    best = max(tried, key=lambda a: (tried[a].mean_rate, -ANGLES.index(a)))
    earned = f"{s.mean_rate:.1%} engagement over {s.posts} post{'s' if s.posts != 1 else ''}"
    if best is angle:
        return f"Best performer for this brand so far ({earned}, brand average {mean:.1%}); it {what}."
    return (
        f"Still uncertain: {earned} against {tried[best].mean_rate:.1%} for "
        f"{best.value.replace('_', ' ').lower()}, so it gets another try; it {what}."
    )
