"""Facebook: a Page post's message holds at most 63,206 characters."""

from hopcast_shared.text_rules.counted import CharacterLimit

FACEBOOK = CharacterLimit(63206, "FACEBOOK")
