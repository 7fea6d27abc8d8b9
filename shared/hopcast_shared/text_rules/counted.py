"""A limit in characters counted as the platform's servers count a string: UTF-16 code units
(Java and JavaScript string length), so an emoji outside the basic plane counts 2. Platforms
whose documentation gives a plain character limit use it (see linkedin.py, threads.py, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from hopcast_shared.text_rules.base import Measure, TextRule, over
from hopcast_shared.text_rules.graphemes import utf16_length


@dataclass(frozen=True)
class CharacterLimit(TextRule):
    limit: int
    platform: str = ""

    def measure(self, text: str) -> Measure:
        length = utf16_length(text)
        empty = ("is empty",) if not text.strip() else ()
        return Measure(length, self.limit, "characters", over(length, self.limit, "characters", *empty))
