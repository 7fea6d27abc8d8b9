"""The deployments give every service what it needs to verify readers' tokens: a production
service refuses to start without a key source, an issuer and an audience (HttpAuthSettings),
so each Kubernetes overlay's ConfigMap and each compose service's environment must carry them,
and hopcast.env documents every HTTP_AUTH_* setting."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopcast_shared.settings import SERVICES, HttpAuthSettings, load

DEPLOY = Path(__file__).resolve().parents[1]
KEY_SOURCES = ("HTTP_AUTH_JWKS_URL", "HTTP_AUTH_PUBLIC_KEY", "HTTP_AUTH_PUBLIC_KEY_FILE")


def http_auth_variables() -> list[str]:
    names = []
    for field, info in HttpAuthSettings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            continue  # HOPCAST_ENV, documented with the deployment settings
        names.append(f"HTTP_AUTH_{field.upper()}")
    return names


def literals(kustomization: Path, section: str) -> dict[str, dict[str, str]]:
    """name -> KEY=VALUE literals of a kustomization's config map or secret generators."""
    doc = yaml.safe_load(kustomization.read_text())
    found: dict[str, dict[str, str]] = {}
    for generator in doc.get(section) or []:
        values = found.setdefault(generator["name"], {})
        for literal in generator.get("literals") or []:
            key, _, value = literal.partition("=")
            values[key] = value
    return found


def test_hopcast_env_documents_every_http_auth_setting() -> None:
    documented = set(re.findall(r"[A-Z0-9_]+", (DEPLOY / "compose" / "hopcast.env").read_text()))
    names = http_auth_variables()
    assert len(names) >= 9 and "HTTP_AUTH_JWKS_URL" in names
    assert [n for n in names if n not in documented] == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_overlay_configures_token_verification_in_its_config_map(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = literals(DEPLOY / "k8s" / "base" / "kustomization.yaml", "configMapGenerator")["hopcast-config"]
    overlay_file = DEPLOY / "k8s" / "overlays" / overlay / "kustomization.yaml"
    config = {**config, **literals(overlay_file, "configMapGenerator").get("hopcast-config", {})}
    assert config["HOPCAST_ENV"] == "production"
    auth = {k: v for k, v in config.items() if k.startswith("HTTP_AUTH_")}
    assert sum(k in auth for k in KEY_SOURCES) == 1, auth
    for name in [n for n in os.environ if n.startswith("HTTP_AUTH_")]:
        monkeypatch.delenv(name)
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = load(HttpAuthSettings)
    assert settings.production and settings.issuer and settings.audience
    assert settings.jwks_url is None or settings.jwks_url.startswith("https://")
    # Public configuration, never in a Secret.
    for secret in literals(overlay_file, "secretGenerator").values():
        assert not [k for k in secret if k.startswith("HTTP_AUTH_")]


def test_every_compose_service_gets_the_token_settings() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    for service in SERVICES:
        environment = compose["services"][service]["environment"]
        missing = [k for k in (*KEY_SOURCES[:2], "HTTP_AUTH_ISSUER", "HTTP_AUTH_AUDIENCE") if k not in environment]
        assert missing == [], (service, missing)
        # The issuer and audience must be given: compose stops with a message when they are not.
        assert ":?" in environment["HTTP_AUTH_ISSUER"] and ":?" in environment["HTTP_AUTH_AUDIENCE"]
