"""Billing's service layer: each event loads, decides (domain/) and writes through adapters/."""
