"""The HTTP_AUTH_* settings the local stack gives its services: the state folder's development
key unless the caller configured a key, and never in production."""

from __future__ import annotations

import stat
from pathlib import Path

from hopcast_shared.auth import DEV_AUDIENCE, DEV_ISSUER, TokenVerifier, issue_dev_token
from hopcast_shared.settings import HttpAuthSettings
from hopcast_stack.services import local_auth_env


def test_local_services_trust_the_state_folders_development_key(tmp_path: Path) -> None:
    env = local_auth_env({}, tmp_path)
    key = Path(env["HTTP_AUTH_PUBLIC_KEY_FILE"])
    assert key.parent == tmp_path / "keys" and key.is_file()
    assert stat.S_IMODE((tmp_path / "keys" / "http-auth-dev-key.pem").stat().st_mode) == 0o600
    assert (env["HTTP_AUTH_ISSUER"], env["HTTP_AUTH_AUDIENCE"]) == (DEV_ISSUER, DEV_AUDIENCE)
    settings = HttpAuthSettings(public_key_file=key, issuer=env["HTTP_AUTH_ISSUER"], audience=env["HTTP_AUTH_AUDIENCE"])
    org = "1c3f9a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
    caller = TokenVerifier.from_settings(settings).verify(issue_dev_token([org], folder=tmp_path))
    assert caller.may_read(org)


def test_a_configured_key_or_production_is_left_alone(tmp_path: Path) -> None:
    assert local_auth_env({"HTTP_AUTH_JWKS_URL": "https://idp.example/jwks"}, tmp_path) == {}
    assert local_auth_env({"HOPCAST_ENV": "production"}, tmp_path) == {}
    assert not (tmp_path / "keys").exists()
    # A caller's own issuer is kept (dev-token signs for it too).
    env = local_auth_env({"HTTP_AUTH_ISSUER": "me"}, tmp_path)
    assert "HTTP_AUTH_ISSUER" not in env and "HTTP_AUTH_PUBLIC_KEY_FILE" in env
