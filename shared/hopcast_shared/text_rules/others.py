"""Platforms without a counting rule of their own here: their documented character limits
(TikTok's caption, YouTube's description, Reddit's self post)."""

from hopcast_shared.text_rules.counted import CharacterLimit

TIKTOK = CharacterLimit(2200, "TIKTOK")
YOUTUBE = CharacterLimit(5000, "YOUTUBE")
REDDIT = CharacterLimit(40000, "REDDIT")
