"""The scheduler's SQL."""
