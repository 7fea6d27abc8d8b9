"""Token keys that must never protect real tokens: all-zero, one byte or a short pattern repeated,
a counting sequence, printable text, or a key printed in Hopcast's own docs and examples.

With HOPCAST_ENV=production such a key stops the service at start; elsewhere it is logged as a
warning (tests and demos may use fixed keys). No message ever holds key material.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import string
from collections.abc import Mapping
from typing import Final

from hopcast_shared.settings import SettingsError

log = logging.getLogger(__name__)

# 32 random bytes hold about 30 distinct values; 16 or fewer happen by chance about once in
# 10^13 keys, so a key with so few is made by hand (a pattern, a word, a counter).
MIN_DISTINCT_BYTES: Final = 17
_PRINTABLE: Final = frozenset(string.printable.encode())

# SHA-256 of every key that appears in Hopcast's documentation, examples or deploy files, past
# or present (tests/security/test_key_strength.py scans the repository for key-looking values
# and fails on one that is not refused). Digests, so this file does not print them again.
DOCUMENTED_KEYS_SHA256: Final = frozenset(
    {
        # deploy/k8s/overlays/dev until it generated its key: `1:` followed by 32 zero bytes.
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925",
    }
)


def weak_key_reason(key: bytes) -> str | None:
    """Why a key must not protect real tokens, or None for a key that looks random."""
    if not any(key):
        return "all zero bytes"
    if len(set(key)) == 1:
        return "one byte repeated"
    for period in range(2, len(key) // 2 + 1):
        if all(key[i] == key[i % period] for i in range(len(key))):
            return f"a pattern of {period} bytes repeated"
    steps = {(b - a) % 256 for a, b in itertools.pairwise(key)}
    if len(steps) == 1:
        return "a counting sequence of bytes"
    if set(key) <= _PRINTABLE:
        return "printable text, not random bytes"
    if len(set(key)) < MIN_DISTINCT_BYTES:
        return f"only {len(set(key))} distinct byte values"
    if hashlib.sha256(key).hexdigest() in DOCUMENTED_KEYS_SHA256:
        return "a key printed in Hopcast's documentation or examples"
    return None


def refuse_weak_keys(weak: Mapping[int, str], *, production: bool) -> None:
    """Stop (production) or warn (elsewhere) for the weak keys, by id with the reason."""
    if not weak:
        return
    found = "; ".join(f"key {key_id} is {reason}" for key_id, reason in sorted(weak.items()))
    if production:
        raise SettingsError(
            f"TOKEN_KEYS holds keys production refuses: {found}. Make random ones with "
            "`hopcast tokens new-key`, and rotate the tokens sealed with these"
        )
    log.warning("TOKEN_KEYS: %s; fine for a test, refused with HOPCAST_ENV=production", found)
