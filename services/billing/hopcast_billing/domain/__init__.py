"""Billing's pure decisions: prices and refund shares."""
