"""Threads: a post's text holds at most 500 characters (Threads API)."""

from hopcast_shared.text_rules.counted import CharacterLimit

THREADS = CharacterLimit(500, "THREADS")
