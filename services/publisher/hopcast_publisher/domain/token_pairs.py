"""Which token pair an account keeps when another arrives: an older pair never replaces a
newer one (the publisher refreshes tokens itself, and X and Bluesky rotate the refresh token,
so a stale pair from upstream would break refresh for good).

A pair's age is its `tokens_issued_at`. One without it (an upstream that does not date its
pairs) is of unknown age: it replaces a pair of unknown age, as before dates existed, but
never a dated one. A pair issued at the same instant as the stored one is taken (a
redelivery, or upstream echoing SocialAccountTokensRefreshed); only a strictly newer pair,
or the first dated one, is a re-authorization that clears `needs_reauth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PairVerdict:
    take: bool
    """Store the arriving pair (else keep the stored one, and its issued time)."""
    clears_reauth: bool
    """The arriving pair is newer: the account is usable again."""


def judge_arriving_pair(stored_issued_at: datetime | None, arriving_issued_at: datetime | None) -> PairVerdict:
    """The verdict on a pair arriving for an account whose stored pair was issued at
    `stored_issued_at` (None: unknown)."""
    if stored_issued_at is None:
        return PairVerdict(take=True, clears_reauth=True)
    if arriving_issued_at is None or arriving_issued_at < stored_issued_at:
        return PairVerdict(take=False, clears_reauth=False)
    return PairVerdict(take=True, clears_reauth=arriving_issued_at > stored_issued_at)
