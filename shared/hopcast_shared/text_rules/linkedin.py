"""LinkedIn: a post's commentary holds at most 3,000 characters (Posts API)."""

from hopcast_shared.text_rules.counted import CharacterLimit

LINKEDIN = CharacterLimit(3000, "LINKEDIN")
