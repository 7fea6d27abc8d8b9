"""Material texts for worlds that need many of them, each unlike the others to the duplicate
check whatever the embedder: sentences of real words drawn from many unrelated fields.

Made-up letter strings used to do for the lexical (hashing) embedder, but a semantic model
reads every string of nonsense as much the same nonsense, and words of one trade (coffee,
bread, yoga) as much the same post: both put drafts of different materials above the 0.85
threshold now and then. Random real words from many fields do not (measured with
all-MiniLM-L6-v2 on 40 template drafts: the closest two at 0.49).
"""

from __future__ import annotations

import random

# fmt: off
WORDS = (
    # nature and weather
    "river", "mountain", "glacier", "meadow", "forest", "desert", "island", "volcano", "thunder", "rainbow",
    "drizzle", "blizzard", "canyon", "harbor", "lagoon", "prairie", "orchard", "pebble", "tide", "comet",
    # animals
    "otter", "falcon", "beetle", "salmon", "badger", "heron", "lizard", "walrus", "pony", "octopus",
    "sparrow", "hedgehog", "dolphin", "moth", "tortoise", "camel", "penguin", "squirrel", "wolf", "bee",
    # city and buildings
    "library", "station", "bridge", "museum", "garage", "tower", "stadium", "market", "alley", "cathedral",
    "warehouse", "subway", "rooftop", "courtyard", "lighthouse", "factory", "airport", "hospital", "theater", "pier",
    # work and tools
    "hammer", "ladder", "invoice", "spreadsheet", "laptop", "printer", "contract", "meeting", "deadline", "budget",
    "wrench", "shovel", "engine", "battery", "cable", "magnet", "compass", "telescope", "microscope", "anchor",
    # sport and games
    "football", "tennis", "marathon", "chess", "bicycle", "skateboard", "kayak", "referee", "trophy", "goalkeeper",
    "volleyball", "surfing", "climbing", "archery", "rowing", "sprint", "puzzle", "dice", "cards", "helmet",
    # music and art
    "violin", "drummer", "choir", "guitar", "sculpture", "canvas", "poetry", "novel", "opera", "melody",
    "trumpet", "painting", "pottery", "ballet", "comedy", "festival", "gallery", "piano", "lyrics", "portrait",
    # science and technology
    "planet", "molecule", "satellite", "algorithm", "robot", "vaccine", "fossil", "rocket", "circuit", "laser",
    "telephone", "software", "database", "network", "galaxy", "electron", "genome", "orbit", "reactor", "sensor",
    # home and clothes
    "blanket", "curtain", "kitchen", "sofa", "window", "umbrella", "scarf", "boots", "jacket", "pillow",
    "garden", "balcony", "staircase", "fireplace", "mirror", "carpet", "wardrobe", "basket", "candle", "lamp",
    # food beyond any one trade
    "mango", "noodles", "pepper", "cheese", "lemon", "pumpkin", "olive", "rice", "mushroom", "walnut",
    "tomato", "cabbage", "sushi", "pretzel", "yogurt", "cinnamon", "garlic", "spinach", "coconut", "vinegar",
    # travel and transport
    "passport", "suitcase", "ferry", "tram", "highway", "tunnel", "cruise", "postcard", "map", "hostel",
    "scooter", "truck", "sailboat", "helicopter", "caravan", "border", "journey", "ticket", "platform", "luggage",
    # people and roles
    "teacher", "nurse", "farmer", "pilot", "lawyer", "carpenter", "astronaut", "mayor", "plumber", "journalist",
    "grandmother", "neighbor", "student", "captain", "chef", "dentist", "firefighter", "gardener", "tailor", "judge",
    # verbs
    "builds", "repairs", "paints", "discovers", "borrows", "measures", "carries", "launches", "plants", "teaches",
    "juggles", "whispers", "celebrates", "polishes", "escapes", "collects", "delivers", "rescues", "sketches", "counts",
    # adjectives
    "quiet", "enormous", "ancient", "purple", "slippery", "brave", "rusty", "gentle", "noisy", "frozen",
    "clever", "wooden", "shiny", "hollow", "curious", "patient", "golden", "narrow", "sleepy", "electric",
)
# fmt: on


def distinct_text(rng: random.Random, sentences: int = 3) -> str:
    """Short sentences of random words: a draft for a platform with a small limit keeps whole
    sentences that fit, and one long sentence would leave only the brand's own words (the
    same in every draft)."""
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 7))).capitalize() + "." for _ in range(sentences)
    )
