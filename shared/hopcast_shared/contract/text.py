"""How a post's text is composed from a draft, in one place: content drafts within each
platform's limit by it, and the publisher posts what it gives."""

from __future__ import annotations

import re
from collections.abc import Sequence


def post_text(content: str, hashtags: Sequence[str], media_urls: Sequence[str] = ()) -> str:
    """The content, then its hashtags (each with one `#`) not already in it, then media links,
    separated by blank lines."""
    present = {w.casefold() for w in re.findall(r"#[^\s#]+", content)}
    tags: list[str] = []
    for tag in hashtags:
        word = "#" + tag.lstrip("#")
        if word.casefold() not in present:
            present.add(word.casefold())
            tags.append(word)
    parts = [content.rstrip()]
    if tags:
        parts.append(" ".join(tags))
    parts.extend(media_urls)
    return "\n\n".join(p for p in parts if p)
