"""How a publishing run ends, from what happened on each platform."""

from __future__ import annotations

from collections.abc import Iterable

from hopcast_shared.contract import RunOutcome


def run_outcome(
    published: Iterable[bool], *, organization_active: bool = True, brand_active: bool = True, timed_out: bool = False
) -> RunOutcome:
    """PUBLISHED when every platform published, PUBLISH_FAILED when none did (TIMED_OUT when the
    run's deadline stopped one of them), else PARTIALLY_PUBLISHED; an inactive organization or
    brand names that instead."""
    if not organization_active:
        return RunOutcome.ORGANIZATION_INACTIVE
    if not brand_active:
        return RunOutcome.BRAND_INACTIVE
    results = list(published)
    if results and all(results):
        return RunOutcome.PUBLISHED
    if any(results):
        return RunOutcome.PARTIALLY_PUBLISHED
    return RunOutcome.TIMED_OUT if timed_out else RunOutcome.PUBLISH_FAILED
