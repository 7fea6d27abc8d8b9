"""The platform API versions the publisher calls, and how old they are.

LinkedIn names its versions by month (`YYYYMM`, `LinkedIn-Version` header), releases one a
month and retires each about a year after its release (answering 426 NONEXISTENT_VERSION).
Meta's Graph API names them `vNN.0` (in the URL path), releases a few a year and keeps each
about two years; its release dates are not in the name, so they are listed here from Meta's
changelog (developers.facebook.com/docs/graph-api/changelog/versions). A version older than
eleven months is stale: bump it before the platform retires it (services/publisher/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

STALE_AFTER_MONTHS = 11

# The defaults, current on 2026-12-06: LinkedIn's newest documented version (November 2026) and
# Meta's (v27.0, released 2026-11-04). Bumping one: services/publisher/README.md, "API versions".
DEFAULT_LINKEDIN_VERSION = "202611"
DEFAULT_GRAPH_VERSION = "v27.0"

LINKEDIN_VERSION = re.compile(r"^(?P<year>20\d\d)(?P<month>0[1-9]|1[0-2])(?:\.(?P<patch>\d\d))?$")
"""`202611`, or a patch of a month's version (`202508.02`)."""
GRAPH_VERSION = re.compile(r"^v(?P<major>\d{1,3})\.(?P<minor>\d{1,2})$")

GRAPH_RELEASES: dict[str, date] = {
    "v27.0": date(2026, 11, 4),
    "v26.0": date(2026, 7, 29),
    "v25.0": date(2026, 2, 18),
    "v24.0": date(2025, 10, 8),
    "v23.0": date(2025, 5, 29),
    "v22.0": date(2025, 1, 21),
    "v21.0": date(2024, 10, 2),
    "v20.0": date(2024, 5, 21),
    "v19.0": date(2024, 1, 23),
}


def linkedin_released(version: str) -> date:
    """The first day of the month a LinkedIn version names; ValueError if it is not `YYYYMM`."""
    match = LINKEDIN_VERSION.match(version)
    if match is None:
        raise ValueError(f"a LinkedIn version is YYYYMM (e.g. 202611), not {version!r}")
    return date(int(match["year"]), int(match["month"]), 1)


def graph_released(version: str) -> date | None:
    """When a Graph API version was released, if this table knows it (None for one newer than
    the table); ValueError if it is not `vNN.N`."""
    if GRAPH_VERSION.match(version) is None:
        raise ValueError(f"a Graph API version is vNN.N (e.g. v27.0), not {version!r}")
    return GRAPH_RELEASES.get(version)


def months_since(released: date, today: date) -> int:
    """Whole months from `released` to `today`."""
    return (today.year - released.year) * 12 + today.month - released.month - (today.day < released.day)


@dataclass(frozen=True)
class VersionAge:
    """A configured API version and what is known of its age on `today`."""

    api: str
    """`linkedin` or `graph`."""
    version: str
    setting: str
    """The environment variable that sets it."""
    released: date | None

    def age_days(self, today: date) -> int | None:
        return None if self.released is None else (today - self.released).days

    def stale(self, today: date) -> bool:
        """Older than eleven months: the platform may retire it within weeks."""
        return self.released is not None and months_since(self.released, today) >= STALE_AFTER_MONTHS
