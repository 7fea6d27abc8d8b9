"""The publisher's use of the shared token crypto: tokens arrive as ciphertext under the
transport associated data, are decrypted on receipt and sealed again bound to their
account (associated data `social_account:<id>`), so a stored token copied onto another
account's row does not decrypt. Plaintext lives only in memory, for one call.
"""

from __future__ import annotations

import uuid

from hopcast_shared.crypto import TRANSPORT_AAD, Keyring, TokenDecryptError, owner_aad

OWNER_KIND = "social_account"

__all__ = ["AccountTokens", "TokenDecryptError"]


class AccountTokens:
    """Seal and open the tokens of social accounts with the service's keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def aad(account_id: uuid.UUID) -> bytes:
        return owner_aad(OWNER_KIND, str(account_id))

    def from_transport(self, ciphertext: str) -> str:
        """The plaintext of a token as upstream sent it; raises TokenDecryptError."""
        return self.keyring.decrypt(ciphertext, associated_data=TRANSPORT_AAD)

    def seal(self, account_id: uuid.UUID, plaintext: str) -> str:
        """The ciphertext to store, under the newest key, bound to the account."""
        return self.keyring.encrypt(plaintext, associated_data=self.aad(account_id))

    def reseal_from_transport(self, account_id: uuid.UUID, ciphertext: str) -> str:
        """Transport ciphertext in, stored ciphertext out: the plaintext never leaves here."""
        return self.seal(account_id, self.from_transport(ciphertext))

    def open(self, account_id: uuid.UUID, stored: str) -> str:
        """The plaintext of a stored token; raises TokenDecryptError (tampered, swapped, unknown key)."""
        return self.keyring.decrypt(stored, associated_data=self.aad(account_id))

    def needs_rotation(self, stored: str) -> bool:
        return bool(self.keyring.needs_rotation(stored))

    def rotate(self, account_id: uuid.UUID, stored: str) -> str:
        """The stored token re-encrypted under the newest key."""
        return self.keyring.reencrypt(stored, associated_data=self.aad(account_id))
