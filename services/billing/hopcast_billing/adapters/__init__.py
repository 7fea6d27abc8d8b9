"""Billing's SQL."""
