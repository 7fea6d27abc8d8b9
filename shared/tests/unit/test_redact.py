"""Secrets never reach logs or dead letters in plaintext; ciphertexts stay for replays."""

from __future__ import annotations

from hopcast_shared.crypto import TRANSPORT_AAD, Keyring
from hopcast_shared.redact import REDACTED, redact_secrets, redact_text

SECRET = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"  # noqa: S105 (made up)


def test_nested_secret_values_are_replaced_and_the_rest_kept() -> None:
    document = {
        "type": "SocialAccountConnected",
        "data": {
            "handle": "@brand",
            "access_token": SECRET,
            "nested": [{"password": SECRET, "name": "x"}, {"client_secret": SECRET}],
            "Authorization": f"Bearer {SECRET}",
            "refresh_token": None,
        },
    }
    clean = redact_secrets(document)
    assert SECRET not in repr(clean)
    assert clean["data"]["handle"] == "@brand"
    assert clean["data"]["access_token"] == REDACTED
    assert clean["data"]["nested"][0] == {"password": REDACTED, "name": "x"}
    assert clean["data"]["refresh_token"] is None
    assert document["data"]["access_token"] == SECRET  # a copy: the input is untouched


def test_a_ciphertext_is_kept_so_a_replay_still_works() -> None:
    sealed = Keyring.generate().encrypt(SECRET, associated_data=TRANSPORT_AAD)
    assert redact_secrets({"access_token": sealed}) == {"access_token": sealed}


def test_free_text_masks_bearer_tokens_and_key_value_pairs() -> None:
    text = f"GET /x Authorization: Bearer {SECRET} then access_token={SECRET}&x=1 and 'password': '{SECRET}'"
    masked = redact_text(text)
    assert SECRET not in masked
    assert masked.count(REDACTED) == 3
    assert masked.startswith("GET /x")
