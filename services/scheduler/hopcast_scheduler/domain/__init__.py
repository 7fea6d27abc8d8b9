"""The scheduler's pure decisions: when a schedule runs, and what a late claim fires."""
