"""Instagram: a caption holds at most 2,200 characters, 30 hashtags and 20 @ tags (Graph API,
IG User Media: "Maximum 2200 characters, 30 hashtags, and 20 @ tags"); a caption with more is
refused."""

from __future__ import annotations

from hopcast_shared.text_rules.base import Measure, TextRule
from hopcast_shared.text_rules.counted import CharacterLimit
from hopcast_shared.text_rules.entities import MENTION, hashtags

MAX_CHARACTERS = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20


class InstagramRule(TextRule):
    platform = "INSTAGRAM"

    def measure(self, text: str) -> Measure:
        measured = CharacterLimit(MAX_CHARACTERS, self.platform).measure(text)
        tags = len(hashtags(text))
        mentions = len(MENTION.findall(text))
        extra: tuple[str, ...] = (f"{tags} hashtags over the limit of {MAX_HASHTAGS}",) if tags > MAX_HASHTAGS else ()
        if mentions > MAX_MENTIONS:
            extra += (f"{mentions} @ tags over the limit of {MAX_MENTIONS}",)
        return Measure(measured.length, MAX_CHARACTERS, measured.unit, measured.problems + extra)
