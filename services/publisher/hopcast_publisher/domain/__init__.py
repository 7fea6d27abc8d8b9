"""The publisher's pure decisions: the pending post's state machine, which account
publishes on a platform, how a run ends, engagement rates. No I/O here."""
