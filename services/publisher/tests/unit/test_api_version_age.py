"""The configured API versions default to current ones, are refused when malformed, and
start-up warns (a log line and a gauge) when one is older than eleven months."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.domain.api_versions import graph_released, linkedin_released, months_since
from hopcast_publisher.service_layer.api_versions import report_api_versions

TODAY = date(2026, 12, 6)


def _gauge(name: str, api: str, version: str) -> float | None:
    return REGISTRY.get_sample_value(f"hopcast_publisher_api_version_{name}", {"api": api, "version": version})


def test_the_defaults_are_current_and_not_stale_today(caplog: pytest.LogCaptureFixture) -> None:
    settings = PublisherSettings()
    assert (settings.linkedin_version, settings.graph_api_version) == ("202611", "v27.0")
    with caplog.at_level(logging.WARNING):
        assert report_api_versions(settings, TODAY) == []
    assert not [r for r in caplog.records if "API version" in r.getMessage()]
    assert _gauge("stale", "linkedin", "202611") == 0
    assert _gauge("age_days", "linkedin", "202611") == (TODAY - date(2026, 11, 1)).days
    assert _gauge("age_days", "graph", "v27.0") == (TODAY - date(2026, 11, 4)).days


def test_a_version_older_than_eleven_months_warns_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    settings = PublisherSettings(linkedin_version="202506", graph_api_version="v24.0")
    with caplog.at_level(logging.WARNING):
        stale = report_api_versions(settings, TODAY)
    assert [(v.api, v.version) for v in stale] == [("linkedin", "202506"), ("graph", "v24.0")]
    assert _gauge("stale", "linkedin", "202506") == 1 and _gauge("stale", "graph", "v24.0") == 1
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("linkedin API version 202506" in line and "Set PUBLISHER_LINKEDIN_VERSION" in line for line in lines)
    assert any("graph API version v24.0" in line and "Set PUBLISHER_GRAPH_API_VERSION" in line for line in lines)


def test_the_defaults_go_stale_after_eleven_months() -> None:
    settings = PublisherSettings()
    assert report_api_versions(settings, date(2027, 9, 30)) == []
    assert [v.api for v in report_api_versions(settings, date(2027, 10, 1))] == ["linkedin"]
    assert [v.api for v in report_api_versions(settings, date(2027, 10, 4))] == ["linkedin", "graph"]


def test_a_graph_version_newer_than_the_table_has_no_known_age_and_no_warning() -> None:
    assert graph_released("v31.0") is None
    assert report_api_versions(PublisherSettings(graph_api_version="v31.0"), TODAY) == []
    assert _gauge("age_days", "graph", "v31.0") is None
    assert _gauge("stale", "graph", "v31.0") == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("linkedin_version", "2025-06"),
        ("linkedin_version", "20250601"),
        ("linkedin_version", "202613"),
        ("graph_api_version", "27.0"),
        ("graph_api_version", "v27"),
    ],
)
def test_a_malformed_version_is_refused_at_start(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match="version"):
        PublisherSettings(**{field: value})


def test_version_dates() -> None:
    assert linkedin_released("202611") == date(2026, 11, 1)
    assert linkedin_released("202508.02") == date(2025, 8, 1)
    assert months_since(date(2026, 1, 15), date(2026, 12, 14)) == 10
    assert months_since(date(2026, 1, 15), date(2026, 12, 15)) == 11
