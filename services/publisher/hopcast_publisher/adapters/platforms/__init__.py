"""Platform adapters behind one interface (`base.PlatformAdapter`): the sandbox, and the
real HTTP adapters for Bluesky, Mastodon, X and LinkedIn, chosen by configuration
(`registry.build_adapters`)."""
