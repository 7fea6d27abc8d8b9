"""Publisher-only settings (the rest comes from the kernel's ServiceSettings), read from
PUBLISHER_* environment variables with safe local defaults."""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hopcast_publisher.domain.api_versions import (
    DEFAULT_GRAPH_VERSION,
    DEFAULT_LINKEDIN_VERSION,
    graph_released,
    linkedin_released,
)
from hopcast_shared.public_address import is_loopback_host, why_not_public_url

LEASE_MARGIN_S = 0.25
"""What a lease must hold for beyond a call's longest duration when the call is sent."""

# The platform URLs of the settings, by the platform whose egress allowlist they fall under.
_PLATFORM_URLS = {
    "BLUESKY": ("bluesky_pds_url",),
    "TWITTER": ("x_api_url",),
    "LINKEDIN": ("linkedin_api_url", "linkedin_oauth_url"),
    "FACEBOOK": ("graph_api_url",),
    "INSTAGRAM": ("instagram_api_url",),
    "THREADS": ("threads_api_url",),
}
THREADS_VERSION = re.compile(r"^v\d{1,2}\.\d{1,2}$")


class PublisherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUBLISHER_", extra="ignore")

    adapter: Literal["sandbox", "live"] = "sandbox"
    """`sandbox` (local default: records posts, returns ids and URLs) or `live` (the real
    Bluesky, Mastodon, X, LinkedIn, Facebook, Instagram and Threads APIs; other platforms fail
    as PLATFORM_REJECTED)."""
    sandbox_url: str = "https://sandbox.hopcast.invalid"
    """Base of the URLs the sandbox returns."""

    # The publishing loop.
    publish_batch_size: int = Field(default=500, ge=1, le=5_000)
    publish_workers: int = Field(default=2, ge=1, le=32)
    """Publishing rounds run at once in one process (a round's database work overlaps
    another's Python work)."""
    publish_concurrency: int = Field(default=50, ge=1, le=1_000)
    poll_interval_s: float = Field(default=2.0, gt=0, le=3600)
    lease_s: float = Field(default=300.0, gt=0)
    """How long a claimed pending post is held before another worker may resume it after a
    crash. Renewed every third of it while its calls wait (entrypoints/lease_keeper.py); a
    platform call is sent only while its lease outlasts it, so the lease must leave room for
    one call (http_connect_timeout_s + http_read_timeout_s) between two renewals."""
    expiry_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often the expiry watcher looks for manual-mode drafts past their approval deadline
    (entrypoints/expiry_watcher.py): a draft ends EXPIRED at most this long after it."""
    completion_max_attempts: int = Field(default=5, ge=1, le=100)
    """Tries to complete a pending post whose completion fails (an event the contract refuses,
    a row the database refuses) before it is ended PUBLISH_FAILED; the others of its batch
    are completed meanwhile."""
    completion_backoff_s: float = Field(default=5.0, ge=0)
    """Wait before the second try, doubled for each next one, up to completion_backoff_max_s."""
    completion_backoff_max_s: float = Field(default=300.0, ge=0)
    refresh_margin_s: float = Field(default=300.0, ge=0)
    """Refresh a token this long before it expires."""
    purge_interval_s: float = Field(default=3600.0, gt=0)

    # Calls to the platforms (live adapters).
    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    http_read_timeout_s: float = Field(default=15.0, gt=0)
    http_max_attempts: int = Field(default=5, ge=1, le=20)
    http_backoff_base_s: float = Field(default=0.5, gt=0)
    http_backoff_max_s: float = Field(default=30.0, gt=0)
    http_deadline_s: float = Field(default=120.0, gt=0)
    account_min_interval_s: float = Field(default=1.0, ge=0)
    """At least this long between two calls for the same account (by any replica: the turns
    are reserved in the database)."""
    rate_limit_max_wait_s: float = Field(default=5.0, ge=0)
    """The longest rate-limit reset a call waits for; a later one defers the platform until
    then (PostPublishDeferred) and frees the worker."""
    max_deferral_s: float = Field(default=86_400.0, gt=0)
    """How long after its first try a platform may still be deferred to; a reset later than
    that fails it RETRIES_EXHAUSTED (refunded)."""

    bluesky_pds_url: str = "https://bsky.social"
    bluesky_app_url: str = "https://bsky.app"
    bluesky_link_cards: bool = True
    """Read a linked page's title and description for its Bluesky card (through the egress
    guard, 3 s and 256 KiB at most); off: the card shows the URL alone."""
    x_api_url: str = "https://api.x.com"
    x_web_url: str = "https://x.com"
    x_client_id: str | None = None
    x_client_secret: SecretStr | None = None
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_oauth_url: str = "https://www.linkedin.com"
    linkedin_version: str = DEFAULT_LINKEDIN_VERSION
    """The LinkedIn-Version header (YYYYMM): November 2026, the newest LinkedIn documented on
    2026-12-06. LinkedIn retires a version about a year after its release; start-up warns at
    eleven months (services/publisher/README.md says how to bump it)."""
    linkedin_client_id: str | None = None
    linkedin_client_secret: SecretStr | None = None
    graph_api_version: str = DEFAULT_GRAPH_VERSION
    """Meta's Graph API version (the URL path's `vNN.N`) for the Facebook and Instagram
    adapters: v27.0, released 2026-11-04, the newest Meta documented on 2026-12-06."""
    graph_api_url: str = "https://graph.facebook.com"
    """Facebook Pages' Graph API host."""
    instagram_api_url: str = "https://graph.instagram.com"
    """Instagram's host: graph.instagram.com for accounts connected with Business Login for
    Instagram (their tokens refresh with ig_refresh_token there), graph.facebook.com for those
    connected through Facebook Login."""
    threads_api_url: str = "https://graph.threads.net"
    threads_api_version: str = "v1.0"
    """The Threads API's version (its own, not the Graph API's)."""
    meta_container_poll_s: float = Field(default=2.0, gt=0)
    """How often an Instagram or Threads container's status is read while Meta processes its
    media (within one call's time; a container still not ready is read again at the next try)."""
    mastodon_client_id: str | None = None
    mastodon_client_secret: SecretStr | None = None
    mastodon_instance_ttl_s: float = Field(default=3600.0, gt=0)
    """How long an instance's text limit (its /api/v2/instance) is kept before it is read again;
    one that did not say is asked again after a twelfth of this."""
    media_max_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    """No media file is read past this many bytes, whatever a platform would take (X takes
    512 MB videos): a longer one fails MEDIA_REJECTED. Files are held in memory while posted."""
    media_processing_timeout_s: float = Field(default=60.0, gt=0)
    """How long a platform may process an upload (Mastodon's 202, X's video, LinkedIn's images)
    before the try is given up and made again."""

    # Where platform calls may go (adapters/platforms/egress.py): https hosts that resolve to
    # public addresses only, checked at connect time.
    egress_allowlist_bluesky: str = ""
    """Comma-separated hosts Bluesky calls may go to (PDSes); empty: any public host."""
    egress_allowlist_mastodon: str = ""
    """Comma-separated Mastodon instances accounts may use; empty: any public host."""
    egress_allowlist_x: str = ""
    egress_allowlist_linkedin: str = ""
    egress_allowlist_facebook: str = ""
    egress_allowlist_instagram: str = ""
    egress_allowlist_threads: str = ""
    egress_allow_loopback: bool = False
    """Tests and local trials only: platform calls may reach 127.0.0.0/8 and ::1 (over plain
    http too), e.g. fake platforms or a local Bluesky PDS. Refused with HOPCAST_ENV=production."""
    hopcast_env: Literal["local", "test", "production"] = Field(default="local", validation_alias="HOPCAST_ENV")

    def egress_allowlists(self) -> dict[str, frozenset[str]]:
        """The allowlist of each platform that has one, by platform (BLUESKY, MASTODON...)."""
        lists = {
            "BLUESKY": self.egress_allowlist_bluesky,
            "MASTODON": self.egress_allowlist_mastodon,
            "TWITTER": self.egress_allowlist_x,
            "LINKEDIN": self.egress_allowlist_linkedin,
            "FACEBOOK": self.egress_allowlist_facebook,
            "INSTAGRAM": self.egress_allowlist_instagram,
            "THREADS": self.egress_allowlist_threads,
        }
        hosts = {p: frozenset(h.strip().lower().rstrip(".") for h in v.split(",")) - {""} for p, v in lists.items()}
        return {p: h for p, h in hosts.items() if h}

    @field_validator("linkedin_version")
    @classmethod
    def _linkedin_version(cls, value: str) -> str:
        linkedin_released(value)
        return value

    @field_validator("threads_api_version")
    @classmethod
    def _threads_api_version(cls, value: str) -> str:
        if THREADS_VERSION.match(value) is None:
            raise ValueError(f"a Threads API version is vN.N (e.g. v1.0), not {value!r}")
        return value

    @field_validator("graph_api_version")
    @classmethod
    def _graph_api_version(cls, value: str) -> str:
        graph_released(value)
        return value

    @model_validator(mode="after")
    def _egress_is_safe(self) -> Self:
        if self.egress_allow_loopback and self.hopcast_env == "production":
            raise ValueError("PUBLISHER_EGRESS_ALLOW_LOOPBACK is for tests and local trials, not production")
        allowlists = self.egress_allowlists()
        for platform, names in _PLATFORM_URLS.items():
            for name in names:
                url = str(getattr(self, name))
                host = (urlsplit(url).hostname or "").lower().rstrip(".")
                if self.egress_allow_loopback and is_loopback_host(host) and urlsplit(url).scheme in ("http", "https"):
                    continue
                why = why_not_public_url(url)
                if why is not None:
                    raise ValueError(f"{name}: must be an https URL of a public host ({why})")
                if platform in allowlists and host not in allowlists[platform]:
                    raise ValueError(f"{name}: its host is not on the {platform} egress allowlist")
        return self

    @property
    def call_s(self) -> float:
        """The longest one platform call may take (the adapters cut it off there)."""
        return self.http_connect_timeout_s + self.http_read_timeout_s

    @model_validator(mode="after")
    def _lease_covers_a_call(self) -> Self:
        # Renewed every third of lease_s: just before the next renewal two thirds are left,
        # which must cover a call and the margin, or calls would wait for renewals.
        if self.lease_s * 2 / 3 <= self.call_s + LEASE_MARGIN_S:
            raise ValueError(
                "lease_s must be more than 1.5 x (http_connect_timeout_s + http_read_timeout_s"
                f" + {LEASE_MARGIN_S}s): a platform call is sent only while its lease outlasts it"
            )
        return self
