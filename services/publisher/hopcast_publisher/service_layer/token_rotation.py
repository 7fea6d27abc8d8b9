"""Re-encrypt every stored token under the newest key (the DESIGN's `hopcast tokens rotate`,
run as `hopcast publisher rotate-tokens`), safely while the service runs.

Accounts are walked in id order in small transactions; each row is replaced only if its
tokens are still the ones read (compare-and-set), so a token the service refreshed in the
meantime is never overwritten; such a row was written under the service's newest key.
Run it after every replica has the new TOKEN_KEYS, so none keeps writing under the old key.
"""

from __future__ import annotations

from dataclasses import dataclass

from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.credentials import AccountTokens, TokenDecryptError
from hopcast_shared.db import Conn


@dataclass
class RotationReport:
    checked: int = 0
    rotated: int = 0
    changed_meanwhile: int = 0
    undecryptable: int = 0


async def rotate_tokens(
    conn: Conn, tokens: AccountTokens, *, batch_size: int = 500, accounts: AccountRepository | None = None
) -> RotationReport:
    accounts = accounts or AccountRepository()
    report = RotationReport()
    after = None
    while True:
        async with conn.transaction():
            rows = await accounts.accounts_to_rotate(conn, after, batch_size)
            for account_id, access_token, refresh_token in rows:
                report.checked += 1
                old = (access_token, refresh_token)
                if not any(t is not None and tokens.needs_rotation(t) for t in old):
                    continue
                try:
                    new = (
                        tokens.rotate(account_id, old[0]),
                        tokens.rotate(account_id, old[1]) if old[1] is not None else None,
                    )
                except TokenDecryptError:
                    report.undecryptable += 1
                    continue
                if await accounts.replace_tokens_if_unchanged(conn, account_id, old, new):
                    report.rotated += 1
                else:
                    report.changed_meanwhile += 1
        if len(rows) < batch_size:
            return report
        after = rows[-1][0]
