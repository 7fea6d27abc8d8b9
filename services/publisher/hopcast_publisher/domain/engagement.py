"""Engagement of a post: the rate the dashboards and content's weighted strategy use."""

from __future__ import annotations


def engagement_rate(likes: int, comments: int, shares: int, impressions: int) -> float:
    """(likes + comments + shares) / impressions; 0 without impressions."""
    if impressions <= 0:
        return 0.0
    return (likes + comments + shares) / impressions
