"""Keep secrets out of logs and dead letters.

`redact_secrets` replaces the values of secret-looking keys, at any depth, unless the
value is a token ciphertext (safe to keep, and needed to replay a dead letter);
`redact_text` masks bearer tokens and `token=...` pairs in free text.
"""

from __future__ import annotations

import re
from typing import Any

from hopcast_shared.crypto import is_ciphertext

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(access_token|refresh_token|^token$|_token$|password|passwd|secret|api_key|apikey|authorization|private_key)",
    re.IGNORECASE,
)
_TEXT_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{6,})"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|token|password|secret|api_key|client_secret)[\"']?\s*[=:]\s*[\"']?)"
        r"([^\s\"'&,;}]{4,})"
    ),
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with secret values replaced (ciphertexts kept)."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str)
                and is_secret_key(k)
                and not (isinstance(v, str) and is_ciphertext(v))
                and v is not None
                else redact_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _mask(match: re.Match[str]) -> str:
    if is_ciphertext(match.group(2)):
        return match.group(0)
    return match.group(1) + REDACTED


def redact_text(text: str) -> str:
    """Free text with bearer tokens and `token=value` pairs masked."""
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(_mask, text)
    return text
