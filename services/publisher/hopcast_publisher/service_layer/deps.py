"""What the publisher's handlers and publishing steps need, built once in `bootstrap.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from hopcast_publisher.adapters.account_limits import AccountLimitRepository
from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.deferrals import DeferralRepository
from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.config import PublisherSettings


@dataclass(frozen=True)
class PublisherDeps:
    """The token sealing of the service's keyring, its settings and its repositories (one per
    aggregate; unit tests pass in-memory ones)."""

    tokens: AccountTokens
    settings: PublisherSettings
    accounts: AccountRepository = field(default_factory=AccountRepository)
    pending_posts: PendingPostRepository = field(default_factory=PendingPostRepository)
    posts: PostRepository = field(default_factory=PostRepository)
    account_limits: AccountLimitRepository = field(default_factory=AccountLimitRepository)
    deferrals: DeferralRepository = field(default_factory=DeferralRepository)
