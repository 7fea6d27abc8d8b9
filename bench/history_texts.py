"""Posts for the history world: a material and the drafts written from it, in the words a small
business would use, reproducible from a seed and all distinct.

Each organization is a kind of business (coffee roaster, bakery, yoga studio, ...); a material
is what it tells (a product, what makes it special, where it comes from, when to come), and a
draft is a post written from it under one of the content service's angles, with its hashtags.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hopcast_shared.contract import Angle


@dataclass(frozen=True)
class Business:
    kind: str
    things: tuple[str, ...]
    qualities: tuple[str, ...]
    stories: tuple[str, ...]
    hashtags: tuple[str, ...]


BUSINESSES = (
    Business(
        "coffee roaster",
        (
            "Ethiopian Guji",
            "Colombian Huila",
            "house espresso blend",
            "decaf Sumatra",
            "Kenyan AA",
            "cold brew concentrate",
            "Brazilian Cerrado",
            "Guatemalan Antigua",
            "washed Rwanda",
            "oat flat white",
        ),
        (
            "bright and floral",
            "chocolatey with a long finish",
            "sweet like stone fruit",
            "round and nutty",
            "clean with a hint of citrus",
            "syrupy and low in acidity",
            "juicy with blackcurrant notes",
            "smooth enough to drink black",
        ),
        (
            "roasted on Tuesday in small batches",
            "bought direct from a cooperative we visit every year",
            "grown at 2,000 metres by a family farm",
            "dried on raised beds for three weeks",
            "cupped twenty times before we chose it",
            "rested for five days before it reaches the bar",
        ),
        ("#coffee", "#specialtycoffee", "#freshroast", "#coffeetime", "#espresso"),
    ),
    Business(
        "bakery",
        (
            "sourdough loaf",
            "cardamom bun",
            "rye with seeds",
            "almond croissant",
            "focaccia",
            "cinnamon roll",
            "spelt baguette",
            "lemon tart",
            "brioche",
            "olive bread",
        ),
        (
            "crackly on the outside and soft inside",
            "still warm at eight",
            "fermented for two days",
            "glazed with brown butter",
            "made with stone-ground flour",
            "baked dark the way we like it",
            "light as a cloud",
            "rich without being heavy",
        ),
        (
            "shaped by hand before sunrise",
            "made from a starter we have kept for eleven years",
            "baked in the wood oven on the corner",
            "made with butter from the valley dairy",
            "a recipe from our grandmother's notebook",
            "proved slowly in the cold overnight",
        ),
        ("#bakery", "#sourdough", "#freshbread", "#baking", "#pastry"),
    ),
    Business(
        "yoga studio",
        (
            "sunrise flow",
            "yin class",
            "beginners' series",
            "breathwork circle",
            "restorative evening",
            "vinyasa hour",
            "prenatal class",
            "mobility workshop",
            "meditation morning",
            "power flow",
        ),
        (
            "gentle on the joints",
            "calm and unhurried",
            "strong and sweaty",
            "open to every body",
            "quiet and candle-lit",
            "playful and light",
            "grounding after a long week",
            "slow and deep",
        ),
        (
            "taught by a teacher with fifteen years of practice",
            "held in the garden room when it is sunny",
            "kept to twelve mats so everyone gets attention",
            "with live music from a local cellist",
            "followed by tea on the terrace",
            "with props for everyone who needs them",
        ),
        ("#yoga", "#yogapractice", "#breathe", "#mindfulness", "#wellbeing"),
    ),
    Business(
        "bookshop",
        (
            "new crime shelf",
            "poetry corner",
            "signed first editions",
            "children's reading hour",
            "translated fiction table",
            "graphic novel section",
            "local history display",
            "book club pick",
            "staff favourites wall",
            "second-hand travel books",
        ),
        (
            "hard to put down",
            "quietly funny",
            "full of surprises",
            "perfect for a rainy weekend",
            "beautifully illustrated",
            "short enough for one sitting",
            "the talk of the shop",
            "warm and wise",
        ),
        (
            "chosen by the three of us who run the shop",
            "ordered in after so many of you asked",
            "from a small press two streets away",
            "with notes in the margins from our readers",
            "arranged by the students who work Saturdays",
            "wrapped for free if it is a gift",
        ),
        ("#books", "#bookshop", "#reading", "#booklover", "#indiebookshop"),
    ),
    Business(
        "bike workshop",
        (
            "winter service",
            "wheel truing",
            "commuter bike range",
            "brake bleed",
            "gravel tyres",
            "e-bike check",
            "kids' balance bikes",
            "fitting session",
            "chain and cassette swap",
            "puncture clinic",
        ),
        (
            "done while you wait",
            "ready the same day",
            "priced up front",
            "tuned to how you ride",
            "quiet and smooth afterwards",
            "safe for the dark evenings",
            "light on the wallet",
            "built to last",
        ),
        (
            "by mechanics who race at the weekend",
            "with parts we keep in stock",
            "on the stand by the front window",
            "with a free check-up a month later",
            "using tools we service every week",
            "booked online in a minute",
        ),
        ("#cycling", "#bikeshop", "#bikerepair", "#commute", "#bikelife"),
    ),
)

WHEN = tuple(
    f"{day} {time}"
    for day in ("on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday", "on Sunday")
    for time in ("morning", "at lunchtime", "afternoon", "evening", "from 7am", "until late")
)

OPENERS: dict[Angle, tuple[str, ...]] = {
    Angle.PRODUCT_FOCUS: ("Meet our", "Say hello to the", "All about the", "Spotlight on the"),
    Angle.USER_BENEFIT: ("Treat yourself to the", "Your week gets better with the", "Made for you: the"),
    Angle.STORYTELLING: ("A little story about the", "How we came to love the", "Behind the"),
    Angle.EDUCATIONAL: ("Did you know? The", "Three things to know about the", "A quick guide to the"),
    Angle.SOCIAL_PROOF: ("You keep asking for the", "Our regulars' favourite: the", "Sold out twice last week: the"),
    Angle.PROMOTIONAL: ("This week only, the", "Two for one on the", "Back by popular demand: the"),
}
CTAS = (
    "See you there!",
    "Come by and say hi.",
    "Tag someone who would love it.",
    "Book your spot on our site.",
    "Drop in, no need to book.",
    "Tell us what you think.",
    "Limited numbers, so come early.",
    "Bring a friend along.",
)


def business_of(org_index: int) -> Business:
    return BUSINESSES[org_index % len(BUSINESSES)]


def material_text(rng: random.Random, business: Business) -> str:
    thing, quality, story, when = (
        rng.choice(business.things),
        rng.choice(business.qualities),
        rng.choice(business.stories),
        rng.choice(WHEN),
    )
    return (
        f"Our {thing} is {quality}. It is {story}, and you can find it at the {business.kind} {when}. "
        f"Batch {rng.randrange(1, 10_000)}."
    )


def draft_text(rng: random.Random, business: Business, material: str, angle: Angle) -> tuple[str, list[str]]:
    """A post written from `material` under `angle`, and its hashtags."""
    opener = rng.choice(OPENERS[angle])
    thing, rest = material.removeprefix("Our ").split(" is ", 1)
    tags = rng.sample(business.hashtags, 2)
    return f"{opener} {thing}: {rest.rsplit(' Batch ', 1)[0]} {rng.choice(CTAS)} {' '.join(tags)}", tags


T = TypeVar("T")


class Distinct:
    """Texts drawn until one not seen before comes up (the space is far larger than the history)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def take(self, draw: Callable[[], T], text: Callable[[T], str] = str) -> T:
        for _ in range(1000):
            drawn = draw()
            if text(drawn) not in self.seen:
                self.seen.add(text(drawn))
                return drawn
        raise RuntimeError("no distinct text left: widen the vocabulary")
