"""Drafting: what a generator gets (the material, the brand's voice, the platforms, the angle)
and the rules every draft obeys whoever wrote it: no word the brand avoids, hashtags in the
brand's style, and the whole post (content, then hashtags) within the smallest length limit
of the run's platforms. A draft uses its material's media, in order with their alt texts;
they go to the platforms as media (issue 18), never as links in the text.

`TemplateGenerator` is the default writer: offline and deterministic, a platform-aware post
built from the material's own sentences and the brand's voice, framed by the angle.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hopcast_shared.contract import Angle, Platform
from hopcast_shared.contract.text import post_text

# Characters a post may have on each platform (the platforms' documented limits for a
# post's text).
PLATFORM_LIMITS: dict[Platform, int] = {
    Platform.TWITTER: 280,
    Platform.BLUESKY: 300,
    Platform.THREADS: 500,
    Platform.MASTODON: 500,
    Platform.INSTAGRAM: 2200,
    Platform.TIKTOK: 2200,
    Platform.LINKEDIN: 3000,
    Platform.YOUTUBE: 5000,
    Platform.FACEBOOK: 63206,
    Platform.REDDIT: 40000,
}
# How many hashtags read well on each platform.
HASHTAG_LIMITS: dict[Platform, int] = {
    Platform.TWITTER: 2,
    Platform.BLUESKY: 3,
    Platform.THREADS: 3,
    Platform.MASTODON: 4,
    Platform.INSTAGRAM: 8,
    Platform.TIKTOK: 5,
    Platform.LINKEDIN: 3,
    Platform.YOUTUBE: 3,
    Platform.FACEBOOK: 3,
    Platform.REDDIT: 0,
}
# Drafts stay short enough to read even where platforms allow far more.
MAX_DRAFT_CHARS = 1200
ELLIPSIS = "…"


@dataclass(frozen=True)
class BrandVoice:
    name: str
    tone: tuple[str, ...] = ()
    target_audience: str = ""
    words_to_use: tuple[str, ...] = ()
    words_to_avoid: tuple[str, ...] = ()
    emoji_usage: str = ""
    hashtag_style: str = ""
    cta_style: str = ""
    default_hashtags: tuple[str, ...] = ()

    @classmethod
    def from_profile(cls, name: str, profile: dict[str, Any]) -> BrandVoice:
        rules = profile.get("language_rules") or {}
        return cls(
            name=name,
            tone=tuple(profile.get("tone") or ()),
            target_audience=profile.get("target_audience") or "",
            words_to_use=tuple(rules.get("words_to_use") or ()),
            words_to_avoid=tuple(rules.get("words_to_avoid") or ()),
            emoji_usage=rules.get("emoji_usage") or "",
            hashtag_style=rules.get("hashtag_style") or "",
            cta_style=rules.get("cta_style") or "",
            default_hashtags=tuple(profile.get("default_hashtags") or ()),
        )


@dataclass(frozen=True)
class MediaRef:
    """One image or video of a material (and of the drafts that use it)."""

    url: str
    alt_text: str | None = None
    mime_type: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"url": self.url, "alt_text": self.alt_text, "mime_type": self.mime_type}


def media_refs(items: Sequence[MediaRef | str]) -> tuple[MediaRef, ...]:
    """Media as given; a bare URL (an older material's) is one without alt text or type."""
    return tuple(m if isinstance(m, MediaRef) else MediaRef(m) for m in items)


@dataclass(frozen=True)
class MaterialText:
    material_id: uuid.UUID
    type: str
    title: str | None
    body: str
    media: tuple[MediaRef, ...] = ()
    content_pillar: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "media", media_refs(self.media))

    @property
    def media_urls(self) -> tuple[str, ...]:
        return tuple(m.url for m in self.media)

    @property
    def text(self) -> str:
        """What is embedded and compared: the title and the body."""
        return "\n".join(p for p in (self.title or "", self.body) if p.strip())


@dataclass(frozen=True)
class DraftRequest:
    material: MaterialText
    voice: BrandVoice
    platforms: tuple[Platform, ...]
    angle: Angle
    angle_reason: str


@dataclass(frozen=True)
class Draft:
    content: str
    hashtags: tuple[str, ...]
    media: tuple[MediaRef, ...] = ()
    """The media the post shows, in order: its material's."""
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "media", media_refs(self.media))

    @property
    def media_urls(self) -> tuple[str, ...]:
        return tuple(m.url for m in self.media)


class Generator(Protocol):
    """Writes a draft; the caller applies `finalise` to whatever comes back."""

    @property
    def name(self) -> str: ...

    async def draft(self, request: DraftRequest) -> Draft: ...


# --- the rules every draft obeys --------------------------------------------------------------


def char_limit(platforms: Sequence[Platform]) -> int:
    return min([PLATFORM_LIMITS[p] for p in platforms] + [MAX_DRAFT_CHARS])


def hashtag_limit(platforms: Sequence[Platform]) -> int:
    return min(HASHTAG_LIMITS[p] for p in platforms) if platforms else 3


def _words_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    words = [w.strip() for w in words if w.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def remove_avoided(text: str, avoid: Sequence[str]) -> str:
    """The text without the words the brand avoids (whole words, any case), tidied."""
    pattern = _words_pattern(avoid)
    if pattern is None:
        return text
    text = pattern.sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" +([,.;:!?])", r"\1", text).strip()
    # A sentence that lost its first word starts with a capital again.
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def contains_avoided(text: str, avoid: Sequence[str]) -> bool:
    pattern = _words_pattern(avoid)
    return bool(pattern and pattern.search(text))


def style_hashtag(tag: str, style: str) -> str | None:
    """`#word` in the brand's style (lowercase, camelCase, PascalCase/capitalized, or as
    given); None when nothing of it is left."""
    words: list[str] = re.findall(r"[^\W_]+", tag.lstrip("#"))
    if not words:
        return None
    s = style.casefold()
    if "camel" in s:
        body = words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])
    elif "pascal" in s or "capital" in s or "title" in s:
        body = "".join(w[:1].upper() + w[1:].lower() for w in words)
    elif "lower" in s:
        body = "".join(words).lower()
    elif "upper" in s:
        body = "".join(words).upper()
    else:
        body = "".join(words)
    return "#" + body[:99]


def hashtags_for(voice: BrandVoice, material: MaterialText, platforms: Sequence[Platform]) -> tuple[str, ...]:
    """The brand's default hashtags, then the material's pillar, in the brand's style, no
    avoided word, no repeat, at most the platforms' hashtag limit."""
    if any(word in voice.hashtag_style.casefold() for word in ("none", "no hashtag", "never")):
        return ()
    raw = list(voice.default_hashtags)
    if material.content_pillar:
        raw.append(material.content_pillar)
    out: list[str] = []
    seen: set[str] = set()
    for tag in raw:
        styled = style_hashtag(tag, voice.hashtag_style)
        if styled is None or contains_avoided(styled.lstrip("#"), voice.words_to_avoid):
            continue
        if styled.casefold() not in seen:
            seen.add(styled.casefold())
            out.append(styled)
    return tuple(out[: hashtag_limit(platforms)])


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    cut = text[: limit - len(ELLIPSIS)]
    # Prefer to end at a word boundary when one is reasonably close.
    space = cut.rfind(" ")
    if space >= len(cut) * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + ELLIPSIS


def fit(draft: Draft, platforms: Sequence[Platform]) -> Draft:
    """Make the whole post fit the smallest limit: drop hashtags from the end, then shorten
    the content at a word boundary. The media take no room in the text."""
    limit = char_limit(platforms)
    content, tags = draft.content.strip(), list(draft.hashtags)
    while tags and len(post_text(content, tags)) > limit:
        tags.pop()
    overhead = len(post_text("", tags)) + (2 if tags else 0)
    content = _truncate(content, max(1, limit - overhead))
    return Draft(content, tuple(tags), draft.media, draft.notes)


def finalise(draft: Draft, request: DraftRequest) -> Draft:
    """The rules, applied to any generator's output: avoided words removed, hashtags styled
    and bounded, the whole post within the platforms' limit."""
    voice = request.voice
    content = remove_avoided(draft.content, voice.words_to_avoid) or remove_avoided(
        request.material.title or voice.name, voice.words_to_avoid
    )
    tags: list[str] = []
    for tag in draft.hashtags:
        styled = style_hashtag(tag, "")  # as given, made a valid hashtag
        if styled and not contains_avoided(styled.lstrip("#"), voice.words_to_avoid) and styled not in tags:
            tags.append(styled)
    tags = tags[: hashtag_limit(request.platforms)]
    fitted = fit(Draft(content or voice.name, tuple(tags), draft.media, draft.notes), request.platforms)
    return fitted


# --- the default writer ------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_EMOJI: dict[Angle, tuple[str, ...]] = {
    Angle.PRODUCT_FOCUS: ("✨", "📦", "🔍"),
    Angle.USER_BENEFIT: ("🙌", "💡", "✅"),
    Angle.STORYTELLING: ("📖", "🌱", "💬"),
    Angle.EDUCATIONAL: ("💡", "📚", "🧠"),
    Angle.SOCIAL_PROOF: ("⭐", "💬", "🤝"),
    Angle.PROMOTIONAL: ("🎉", "🔥", "👉"),
}
_CTA: dict[str, dict[Angle, str]] = {
    "soft": {
        Angle.PRODUCT_FOCUS: "Curious? Take a closer look.",
        Angle.USER_BENEFIT: "Give it a try when you are ready.",
        Angle.STORYTELLING: "We would love to hear your story too.",
        Angle.EDUCATIONAL: "Save this for later.",
        Angle.SOCIAL_PROOF: "Tell us what you think.",
        Angle.PROMOTIONAL: "Have a look if it suits you.",
    },
    "direct": {
        Angle.PRODUCT_FOCUS: "See it for yourself today.",
        Angle.USER_BENEFIT: "Start today.",
        Angle.STORYTELLING: "Come and be part of it.",
        Angle.EDUCATIONAL: "Try it today and share what you learn.",
        Angle.SOCIAL_PROOF: "Join them today.",
        Angle.PROMOTIONAL: "Get yours now.",
    },
}


def _emoji_count(usage: str) -> int:
    u = usage.casefold()
    if not u or any(w in u for w in ("none", "no emoji", "never", "avoid")):
        return 0
    if any(w in u for w in ("heavy", "lots", "many", "high", "frequent")):
        return 2
    return 1


def _cta_kind(style: str) -> str | None:
    s = style.casefold()
    if not s or any(w in s for w in ("none", "no cta", "never")):
        return None
    if any(w in s for w in ("direct", "strong", "hard", "urgent", "bold")):
        return "direct"
    return "soft"


def _sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE.split(flat) if s.strip()]


def _ending(tone: Sequence[str]) -> str:
    lively = {"playful", "fun", "energetic", "enthusiastic", "excited", "bold", "upbeat"}
    return "!" if any(t.casefold() in lively for t in tone) else "."


def _media_name(url: str) -> str:
    """`https://cdn.example/spring-menu_2027.jpg` -> `spring menu 2027`."""
    last = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last else last
    return " ".join(re.split(r"[-_+%\s]+", stem)).strip()


def _topic(material: MaterialText) -> str:
    if material.title and material.title.strip():
        return material.title.strip().rstrip(".!?")
    first = _sentences(material.body)
    if first:
        return first[0].rstrip(".!?")
    # A media-only material: its file name is the best hint of what it shows.
    for url in material.media_urls:
        name = _media_name(url)
        if name and not name.isdigit():
            return name[:1].upper() + name[1:]
    return "What we have been working on"


def _opening(angle: Angle, material: MaterialText, voice: BrandVoice, end: str) -> str:
    topic = _topic(material)
    audience = voice.target_audience.strip().rstrip(".")
    if angle is Angle.PRODUCT_FOCUS:
        return f"{topic}{end}"
    if angle is Angle.USER_BENEFIT:
        who = f"For {audience[0].lower()}{audience[1:]}" if audience else "For you"
        return f"{who}: {topic[0].lower()}{topic[1:]}{end}"
    if angle is Angle.STORYTELLING:
        return f"A little story from {voice.name}: {topic[0].lower()}{topic[1:]}{end}"
    if angle is Angle.EDUCATIONAL:
        return f"Something worth knowing: {topic[0].lower()}{topic[1:]}{end}"
    if angle is Angle.SOCIAL_PROOF:
        return f"What people tell us about {topic[0].lower()}{topic[1:]}{end}"
    return f"Don't miss it: {topic[0].lower()}{topic[1:]}{end}"


class TemplateGenerator:
    """The default writer: deterministic, offline. Opening framed by the angle, the
    material's own sentences, one of the brand's words when none appears, the call to action
    and emoji the brand's rules ask for, the brand's hashtags."""

    name = "template"

    async def draft(self, request: DraftRequest) -> Draft:
        return self.write(request)

    def write(self, request: DraftRequest) -> Draft:
        material, voice, angle = request.material, request.voice, request.angle
        end = _ending(voice.tone)
        opening = _opening(angle, material, voice, end)
        # Sentences with a word the brand avoids are left out rather than mangled.
        body = [
            s
            for s in _sentences(material.body)
            if s.rstrip(".!?") != _topic(material) and not contains_avoided(s, voice.words_to_avoid)
        ]
        tags = hashtags_for(voice, material, request.platforms)
        limit = char_limit(request.platforms)
        # Whole sentences while they fit; the closing lines are kept, the body gives way.
        for keep in range(len(body), -1, -1):
            content = self._compose(request, opening, body[:keep], end)
            if len(post_text(content, tags)) <= limit:
                break
        return finalise(Draft(content, tags, material.media), request)

    @staticmethod
    def _compose(request: DraftRequest, opening: str, body: Sequence[str], end: str) -> str:
        voice, angle = request.voice, request.angle
        parts = [opening, *body]
        use = [w for w in voice.words_to_use if w.strip() and not contains_avoided(w, voice.words_to_avoid)]
        pattern = _words_pattern(use)
        if pattern is not None and not pattern.search(" ".join(parts)):
            parts.append(f"{use[0].strip().capitalize()}, as always{end}")
        cta = _cta_kind(voice.cta_style)
        if cta is not None:
            parts.append(_CTA[cta][angle])
        emoji = _EMOJI[angle][: _emoji_count(voice.emoji_usage)]
        content = " ".join(parts)
        if emoji:
            content = f"{emoji[0]} {content}" + (f" {''.join(emoji[1:])}" if len(emoji) > 1 else "")
        return content
