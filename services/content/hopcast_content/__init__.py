"""Hopcast's content service: materials and their lifecycle, the pick of a material for each
due run by the schedule's strategy, drafting with a learned angle, and near-duplicate
detection over the organization's last 30 days with pgvector."""
