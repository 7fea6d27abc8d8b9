"""The Meta adapters chosen by PUBLISHER_ADAPTER=live with their settings: the Graph API version
for Facebook and Instagram, Threads' own, their hosts https and public (and on their allowlist
when one is set), and `make run`'s sandbox left as it is."""

from __future__ import annotations

import pytest

from hopcast_publisher.adapters.platforms.facebook import FacebookAdapter
from hopcast_publisher.adapters.platforms.instagram import InstagramAdapter
from hopcast_publisher.adapters.platforms.registry import build_adapters
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.adapters.platforms.threads import ThreadsAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.settings import SettingsError, load


async def test_live_publishes_on_meta_with_the_configured_versions_and_hosts() -> None:
    settings = load(
        PublisherSettings,
        adapter="live",
        graph_api_version="v26.0",
        instagram_api_url="https://graph.facebook.com",
        threads_api_version="v1.0",
    )
    adapters = build_adapters(settings)
    facebook, instagram, threads = adapters["FACEBOOK"], adapters["INSTAGRAM"], adapters["THREADS"]
    assert isinstance(facebook, FacebookAdapter) and isinstance(instagram, InstagramAdapter)
    assert isinstance(threads, ThreadsAdapter)
    assert facebook._url("1/feed") == "https://graph.facebook.com/v26.0/1/feed"
    assert instagram._url("1/media") == "https://graph.facebook.com/v26.0/1/media"
    assert threads._url("1/threads") == "https://graph.threads.net/v1.0/1/threads"
    assert threads.version_setting == "PUBLISHER_THREADS_API_VERSION"
    for adapter in adapters.values():
        await adapter.close()


async def test_the_sandbox_stays_the_default_for_the_meta_platforms() -> None:
    adapters = build_adapters(PublisherSettings())
    assert all(isinstance(adapters[p], SandboxAdapter) for p in ("FACEBOOK", "INSTAGRAM", "THREADS"))


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("threads_api_version", "1.0", "vN.N"),
        ("graph_api_url", "http://graph.facebook.com", "https"),
        ("threads_api_url", "https://10.0.0.1", "public"),
    ],
)
def test_a_bad_meta_setting_is_refused_at_start(setting: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        load(PublisherSettings, **{setting: value})


def test_a_meta_host_off_its_allowlist_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="INSTAGRAM egress allowlist"):
        load(PublisherSettings, egress_allowlist_instagram="graph.facebook.com")
    assert load(PublisherSettings, egress_allowlist_threads="graph.threads.net").egress_allowlists() == {
        "THREADS": frozenset({"graph.threads.net"})
    }
