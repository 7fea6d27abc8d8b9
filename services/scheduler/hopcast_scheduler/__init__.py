"""Hopcast's scheduler: recurring schedules in the brand's time zone, claimed safely across
replicas, each due run emitted as ScheduleDue."""
