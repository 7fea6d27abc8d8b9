"""The demo's pictures (issue 18): one per material of Northwind Coffee and Lumen Yoga, each with
its alt text, so their posts go out with an image on Bluesky and Instagram (the sandbox records
them, unfetched); the bakery's materials stay text only."""

from __future__ import annotations

from typing import Any

# Where the pictures would be: a reserved name, never fetched by the sandbox.
MEDIA_BASE = "https://media.hopcast.example/demo/"

_PICTURES: dict[str, tuple[str, str]] = {
    "Grind right before you brew": ("northwind/grinder.jpg", "A hand grinder full of dark beans next to a kettle"),
    "The 1:16 ratio": ("northwind/scale.jpg", "A kitchen scale showing 16 grams of coffee beside a pour-over cone"),
    "Tuesday is roast day": ("northwind/roaster.jpg", "Ana pouring fresh beans from the drum roaster to cool"),
    "Meet our green buyer": ("northwind/farm.jpg", "Tomás tasting coffee samples at a farm's cupping table"),
    "Compostable bags": ("northwind/bag.png", "A brown compostable coffee bag standing on a green bin"),
    "Paying above fair trade": ("northwind/prices.png", "A chart of the prices paid to partner farms this year"),
    "Three breaths before you start": ("lumen/breathe.jpg", "A woman on a mat, eyes closed, in morning light"),
    "Blocks are not cheating": ("lumen/blocks.jpg", "Two cork blocks under a student's hands in a forward fold"),
    "Sunday tea after class": ("lumen/tea.jpg", "Students chatting over cups of ginger tea after class"),
    "New evening class": ("lumen/evening.jpg", "The studio at dusk, mats laid out under warm lamps"),
    "Teacher spotlight: Mira": ("lumen/mira.jpg", "Mira smiling at the front of the class in tree pose"),
}


def media_of(title: str) -> list[dict[str, Any]]:
    """The media of the demo material with this title (none for a text-only one)."""
    if title not in _PICTURES:
        return []
    path, alt_text = _PICTURES[title]
    mime_type = "image/png" if path.endswith(".png") else "image/jpeg"
    return [{"url": MEDIA_BASE + path, "alt_text": alt_text, "mime_type": mime_type}]
