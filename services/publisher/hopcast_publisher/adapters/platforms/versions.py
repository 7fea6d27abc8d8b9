"""Answers that say the platform no longer serves the API version we call, and the failure
they make: API_VERSION_RETIRED, never retried (every retry would meet the same answer), counted
(`hopcast_publisher_api_version_retired_total`) and logged with the version and the setting
that changes it.

- Any platform: 426 Upgrade Required.
- LinkedIn: 426 `NONEXISTENT_VERSION` ("Requested version 202401 is not active") for a retired
  or unknown `LinkedIn-Version`, 400 `VERSION_MISSING` without one.
- Graph API (Facebook, Instagram): error code 2635 ("You are calling a deprecated version of
  the ... API"), or an error whose message says the version is deprecated or unsupported.
"""

from __future__ import annotations

import logging
import re

from hopcast_publisher import metrics
from hopcast_publisher.adapters.platforms.base import PublishFailure
from hopcast_shared.contract import PublishFailureReason

log = logging.getLogger(__name__)

UPGRADE_REQUIRED = 426
LINKEDIN_VERSION_CODES = frozenset({"NONEXISTENT_VERSION", "VERSION_MISSING"})
GRAPH_DEPRECATED_VERSION_CODE = 2635
_GRAPH_VERSION_MESSAGE = re.compile(
    r"deprecated version|unsupported version|version\b.{0,40}\b(is deprecated|is no longer (available|supported)"
    r"|is not (active|supported|available))",
    re.IGNORECASE,
)


def linkedin_version_retired(status: int, body: dict[str, object]) -> bool:
    """Whether a LinkedIn answer refuses the LinkedIn-Version we sent."""
    return status == UPGRADE_REQUIRED or body.get("code") in LINKEDIN_VERSION_CODES


def graph_version_retired(status: int, body: dict[str, object]) -> bool:
    """Whether a Graph API answer (`{"error": {"code", "message", ...}}`) refuses the version in
    the URL."""
    if status == UPGRADE_REQUIRED:
        return True
    error = body.get("error")
    if not isinstance(error, dict):
        return False
    if error.get("code") == GRAPH_DEPRECATED_VERSION_CODE:
        return True
    message = error.get("message")
    return isinstance(message, str) and _GRAPH_VERSION_MESSAGE.search(message) is not None


def version_retired(platform: str, version: str, setting: str, answer: str) -> PublishFailure:
    """The failure of a call the platform refused for its API version (`answer`: what it said,
    a status and its error code, already scrubbed), counted and logged."""
    metrics.API_VERSION_RETIRED.labels(platform, version).inc()
    log.error(
        "%s no longer serves API version %s (%s): nothing is published there until %s is set to a"
        " current version (see services/publisher/README.md, 'API versions')",
        platform,
        version,
        answer,
        setting,
    )
    return PublishFailure(
        PublishFailureReason.API_VERSION_RETIRED,
        f"{answer}: API version {version} is retired; set {setting} to a current one",
    )
