"""At start-up, how old the configured platform API versions are: a gauge each
(`hopcast_publisher_api_version_age_days`, `..._stale`) and a warning naming the setting to
bump when one is older than eleven months, before the platform retires it."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from hopcast_publisher import metrics
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.domain.api_versions import VersionAge, graph_released, linkedin_released

log = logging.getLogger(__name__)


def configured_versions(settings: PublisherSettings) -> list[VersionAge]:
    return [
        VersionAge(
            "linkedin",
            settings.linkedin_version,
            "PUBLISHER_LINKEDIN_VERSION",
            linkedin_released(settings.linkedin_version),
        ),
        VersionAge(
            "graph",
            settings.graph_api_version,
            "PUBLISHER_GRAPH_API_VERSION",
            graph_released(settings.graph_api_version),
        ),
    ]


def report_api_versions(settings: PublisherSettings, today: date | None = None) -> list[VersionAge]:
    """Set the version gauges and warn about each stale version; returns the stale ones."""
    today = today or datetime.now(UTC).date()
    stale = []
    for version in configured_versions(settings):
        age = version.age_days(today)
        if age is not None:
            metrics.API_VERSION_AGE_DAYS.labels(version.api, version.version).set(age)
        metrics.API_VERSION_STALE.labels(version.api, version.version).set(int(version.stale(today)))
        if version.stale(today):
            stale.append(version)
            log.warning(
                "%s API version %s (%s) was released on %s, %d days ago: the platform retires versions"
                " about a year after release, after which every post there fails API_VERSION_RETIRED."
                " Set %s to a current version (services/publisher/README.md, 'API versions')",
                version.api,
                version.version,
                version.setting,
                version.released,
                age,
                version.setting,
            )
    return stale
