"""Hopcast's publisher: social accounts (tokens encrypted at rest), brand-account links,
pending posts published exactly once per platform, posts and their engagement."""
