"""What goes out on a platform: the text of a post and the key that makes its publication
idempotent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence


def post_text(content: str, hashtags: Sequence[str], media_urls: Sequence[str] = ()) -> str:
    """The content, then its hashtags (each with one `#`) not already in it, then media links."""
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


def idempotency_key(pending_post_id: uuid.UUID, platform: str) -> str:
    """One key per pending post and platform, sent with every call that could create the post."""
    return f"hopcast-{pending_post_id}-{platform.lower()}"
