"""Keep secrets out of logs and dead letters.

`redact_secrets` replaces the values of secret-looking keys, at any depth, unless the
value is a token ciphertext (safe to keep, and needed to replay a dead letter);
`redact_text` masks bearer tokens, `token=...` pairs, URL passwords and JWTs in free text.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from hopcast_shared.crypto import is_ciphertext

REDACTED: Final = "[REDACTED]"

# Compared against a key lowercased with separators removed, so `access_token`,
# `accessToken`, `Access-Token` and `X-Api-Key` are all caught. "Ends with token" rather
# than "contains token" keeps useful fields such as `token_expires_at` and `max_tokens`.
_SECRET_KEY_SUFFIXES: Final = ("token", "jwt")
_SECRET_KEY_PARTS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "authorization",
    "privatekey",
    "credential",
    "cookie",
)

_SENSITIVE_NAME = r"(?:token|jwt|passw(?:or)?d|passphrase|secret|api[_-]?key|cookie)"
_QUOTE = r"(?:\\?[\"'])?"  # a quote, possibly escaped (JSON inside a JSON string)
_VALUE = r"[^\s\"'\\&,;}]"
# Each pattern's group 1 is kept, group 2 is masked (unless it is a token ciphertext). Beside
# each, the words one of which any match must contain, so that a text holding none of them is
# not scanned (a scan of a megabyte costs tens of milliseconds a pattern, and dead letters
# are often that large). The third says whether they are sought in the text as `_fold`
# lowercases it (for a pattern that ignores case) or in the text as it is.
_TEXT_PATTERNS: Final = (
    # `Authorization: Bearer x`, `Authorization: Basic x`, `authorization=x`: mask the credentials.
    (
        re.compile(rf"(?i)(\bauthorization{_QUOTE}\s*[=:]\s*{_QUOTE}(?:(?:bearer|basic|token|digest)\s+)?)({_VALUE}+)"),
        ("authorization",),
        True,
    ),
    (re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{6,})"), ("bearer",), True),
    # `access_token=x`, `"refreshJwt": "x"`, `X-Api-Key: x`, `client_secret: x`; a bare null or
    # boolean stays (it says the token is missing, which helps and reveals nothing).
    (
        re.compile(
            rf"(?i)({_SENSITIVE_NAME}{_QUOTE}\s*[=:]\s*{_QUOTE})(?!(?:null|none|true|false)(?!{_VALUE}))({_VALUE}{{4,}})"
        ),
        ("token", "jwt", "passw", "passp", "secret", "api", "cookie"),
        True,
    ),
    # `postgresql://user:password@host`: the password only.
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)(?=@)"), ("://",), False),
    # A bare JWT (Bluesky's accessJwt, OpenID id tokens) wherever it appears.
    (re.compile(r"()(\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*)"), ("eyJ",), False),
)
# The characters other than A-Z and a-z that the patterns' (?i) takes for an ASCII letter:
# str.lower() leaves the dotless i and the long s as they are and makes the dotted I two
# characters (the Kelvin sign it does lower to k: listed so that the four are in one place).
_CASELESS_TWINS: Final = {"\u0130": "i", "\u0131": "i", "\u212a": "k", "\u017f": "s"}


def _fold(text: str) -> str:
    """The text lowercased so that every letter a pattern's (?i) matches to an ASCII letter is
    that letter, one character for one (test_redact checks this over all of Unicode)."""
    for twin, letter in _CASELESS_TWINS.items():
        if twin in text:
            text = text.replace(twin, letter)
    return text.lower()


_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")
_SECRET_KEY_PART: Final = re.compile("|".join(_SECRET_KEY_PARTS))
_REMEMBERED_KEY_CHARS: Final = 64


def is_secret_key(key: str) -> bool:
    """Whether a field name says its value is a secret (case and separators ignored). The
    verdicts on short names are remembered: a document asks about the same few names again
    and again (a hostile one, about one name thousands of levels deep)."""
    if len(key) <= _REMEMBERED_KEY_CHARS:
        return _is_secret_short_key(key)
    return _judge_key(key)


def _judge_key(key: str) -> bool:
    normalized = _NOT_ALNUM.sub("", key.lower())
    return normalized.endswith(_SECRET_KEY_SUFFIXES) or _SECRET_KEY_PART.search(normalized) is not None


_is_secret_short_key: Final = functools.lru_cache(maxsize=4096)(_judge_key)


def _redact_field(key: object, value: Any) -> bool:
    """Whether a field's value is replaced whole: a secret key, unless null or a ciphertext."""
    if not (isinstance(key, str) and is_secret_key(key)) or value is None:
        return False
    return not (isinstance(value, str) and is_ciphertext(value))


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with secret values replaced (ciphertexts and nulls kept).

    Dicts and lists are copied (a tuple comes back as a list), strings pass through
    `redact_text`, anything else is returned as is. The walk uses its own stack, not
    recursion: a dead letter is often the hostile event, nesting included.
    """
    root: list[Any] = [None]
    # (what to copy, the container to put the copy in, and where in it)
    pending: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while pending:
        source, target, slot = pending.pop()
        if isinstance(source, dict):
            copy: dict[Any, Any] = {}
            for key, item in source.items():
                if _redact_field(key, item):
                    copy[key] = REDACTED
                else:
                    copy[key] = None  # holds the key's place, so the copy keeps the order
                    pending.append((item, copy, key))
            target[slot] = copy
        elif isinstance(source, list | tuple):
            items: list[Any] = [None] * len(source)
            pending.extend((item, items, index) for index, item in enumerate(source))
            target[slot] = items
        elif isinstance(source, str):
            target[slot] = redact_text(source)
        else:
            target[slot] = source
    return root[0]


def _mask(match: re.Match[str]) -> str:
    if is_ciphertext(match.group(2)):
        return match.group(0)
    return match.group(1) + REDACTED


def redact_text(text: str) -> str:
    """Free text with bearer tokens, `token=value` pairs, URL passwords and JWTs masked."""
    folded: str | None = None
    for pattern, words, caseless in _TEXT_PATTERNS:
        if caseless:
            folded = _fold(text) if folded is None else folded
            if not any(word in folded for word in words):
                continue
        elif not any(word in text for word in words):
            continue
        masked = pattern.sub(_mask, text)
        if masked != text:
            text, folded = masked, None
    return text
