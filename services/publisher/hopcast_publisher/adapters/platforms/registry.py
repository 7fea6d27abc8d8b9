"""Which adapter publishes on which platform, from PUBLISHER_ADAPTER: `sandbox` for every
platform (the local default), or `live` for the real Bluesky, Mastodon, X, LinkedIn, Facebook,
Instagram and Threads adapters (other platforms have no live adapter and fail as
PLATFORM_REJECTED). The live adapters share one media fetcher and remember uploads in
`uploads` (the publisher's database in the service; in memory when not given)."""

from __future__ import annotations

from collections.abc import Mapping

from hopcast_publisher.adapters.media_uploads import MediaUploads, MemoryMediaUploads
from hopcast_publisher.adapters.platforms.base import AccountRateLimiter, PlatformAdapter, RetryPolicy
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.facebook import FacebookAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.instagram import InstagramAdapter
from hopcast_publisher.adapters.platforms.link_cards import LinkCardReader
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.mastodon_instance import InstanceLimitCache
from hopcast_publisher.adapters.platforms.media import MediaOptions
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.adapters.platforms.threads import ThreadsAdapter
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.contract import Platform


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return get() if callable(get) else None


def build_adapters(settings: PublisherSettings, uploads: MediaUploads | None = None) -> Mapping[str, PlatformAdapter]:
    """An adapter per platform that has one (a platform missing here cannot be published on)."""
    if settings.adapter == "sandbox":
        return {p.value: SandboxAdapter(p.value, base_url=settings.sandbox_url) for p in Platform}
    egress = EgressPolicy(allow_loopback=settings.egress_allow_loopback, allowlists=settings.egress_allowlists())
    options = AdapterOptions(
        policy=RetryPolicy(
            max_attempts=settings.http_max_attempts,
            base_delay_s=settings.http_backoff_base_s,
            max_delay_s=settings.http_backoff_max_s,
            deadline_s=settings.http_deadline_s,
            max_wait_s=settings.rate_limit_max_wait_s,
        ),
        http=HttpSettings(
            connect_timeout_s=settings.http_connect_timeout_s, read_timeout_s=settings.http_read_timeout_s
        ),
        egress=egress,
        limiter=AccountRateLimiter(settings.account_min_interval_s),
        media=MediaOptions(
            MediaFetcher(egress, timeout_s=settings.http_read_timeout_s),
            uploads or MemoryMediaUploads(),
            max_fetch_bytes=settings.media_max_bytes,
            poll_timeout_s=settings.media_processing_timeout_s,
        ),
    )
    return {
        Platform.BLUESKY.value: BlueskyAdapter(
            pds_url=settings.bluesky_pds_url,
            app_url=settings.bluesky_app_url,
            options=options,
            link_cards=LinkCardReader(options.egress) if settings.bluesky_link_cards else None,
        ),
        Platform.MASTODON.value: MastodonAdapter(
            client_id=settings.mastodon_client_id,
            client_secret=_secret(settings.mastodon_client_secret),
            options=options,
            instances=InstanceLimitCache(
                ttl_s=settings.mastodon_instance_ttl_s, retry_s=settings.mastodon_instance_ttl_s / 12
            ),
        ),
        Platform.TWITTER.value: XAdapter(
            api_url=settings.x_api_url,
            web_url=settings.x_web_url,
            client_id=settings.x_client_id,
            client_secret=_secret(settings.x_client_secret),
            options=options,
        ),
        Platform.LINKEDIN.value: LinkedInAdapter(
            api_url=settings.linkedin_api_url,
            oauth_url=settings.linkedin_oauth_url,
            version=settings.linkedin_version,
            client_id=settings.linkedin_client_id,
            client_secret=_secret(settings.linkedin_client_secret),
            options=options,
        ),
        Platform.FACEBOOK.value: FacebookAdapter(
            api_url=settings.graph_api_url, version=settings.graph_api_version, options=options
        ),
        Platform.INSTAGRAM.value: InstagramAdapter(
            api_url=settings.instagram_api_url,
            version=settings.graph_api_version,
            options=options,
            poll_interval_s=settings.meta_container_poll_s,
        ),
        Platform.THREADS.value: ThreadsAdapter(
            api_url=settings.threads_api_url,
            version=settings.threads_api_version,
            options=options,
            poll_interval_s=settings.meta_container_poll_s,
        ),
    }
