"""The scheduler's service layer: each event, and each tick, loads, decides (domain/) and writes
through adapters/."""
