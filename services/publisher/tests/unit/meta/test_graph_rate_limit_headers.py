"""The Graph API's usage headers read as the reset before which an account may not call again:
X-App-Usage and X-Page-Usage at 100 percent (no reset given: the unannounced wait),
X-Business-Use-Case-Usage's estimated_time_to_regain_access (minutes), the latest one winning."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hopcast_publisher.adapters.platforms.rate_limits import graph_rate_limit

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_usage_under_its_limit_holds_nothing() -> None:
    headers = {
        "x-app-usage": json.dumps({"call_count": 99, "total_cputime": 10, "total_time": 40}),
        "x-business-use-case-usage": json.dumps(
            {"1": [{"type": "pages", "call_count": 5, "estimated_time_to_regain_access": 0}]}
        ),
    }
    assert graph_rate_limit(headers, NOW, 900) is None


def test_a_used_up_app_or_page_usage_holds_for_the_unannounced_wait() -> None:
    for name in ("x-app-usage", "x-page-usage"):
        limit = graph_rate_limit({name: json.dumps({"call_count": 12, "total_time": 100})}, NOW, 900)
        assert limit is not None and limit.reset_at == NOW + timedelta(seconds=900)


def test_the_longest_regain_time_of_the_business_use_cases_wins() -> None:
    usage = {
        "111": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}],
        "222": [{"type": "instagram", "call_count": 40, "estimated_time_to_regain_access": 42}],
    }
    limit = graph_rate_limit({"x-business-use-case-usage": json.dumps(usage)}, NOW, 900)
    assert limit is not None and limit.reset_at == NOW + timedelta(minutes=42)


def test_headers_that_are_not_json_are_ignored() -> None:
    assert graph_rate_limit({"x-app-usage": "{not json", "x-business-use-case-usage": "[1]"}, NOW, 900) is None
