"""A reviewer's edit (PendingPostApproved with texts), checked as a draft is: each text within
its platform's own counting rule, and for a platform the post is for. The near-duplicate check
follows in the service layer (it needs the organization's embeddings)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from hopcast_shared.contract import EditRefusalReason, Platform
from hopcast_shared.text_rules import rule_for


@dataclass(frozen=True)
class EditRefusal:
    reason: EditRefusalReason
    platform: Platform | None
    detail: str


def rule_refusal(texts: Mapping[Platform, str], platforms: Collection[str]) -> EditRefusal | None:
    """The first text (in platform order) that may not be posted as edited, and why; None when
    every one may. Mastodon is judged by its default limit, as drafts are: the account's
    instance, and its own limit, are the publisher's to know (it checks again when it posts)."""
    for platform in sorted(texts, key=lambda p: p.value):
        if platform.value not in platforms:
            return EditRefusal(
                EditRefusalReason.NOT_A_PLATFORM_OF_THE_POST,
                platform,
                f"the post is not for {platform.value} (its platforms: {', '.join(sorted(platforms))})",
            )
        problems = rule_for(platform).problems(texts[platform])
        if problems:
            return EditRefusal(
                EditRefusalReason.TEXT_BREAKS_RULE,
                platform,
                f"the text breaks {platform.value}'s rule: {'; '.join(problems)}"[:500],
            )
    return None
