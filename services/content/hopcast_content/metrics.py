"""Content's own metrics, beside the kernel's."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RUNS = Counter("hopcast_content_runs_total", "Runs handled, by result (DRAFTED or the skip reason)", ["result"])
MATERIALS = Counter("hopcast_content_materials_total", "Materials reaching a status", ["status"])
RUN_SECONDS = Histogram("hopcast_content_run_seconds", "Time to handle one ScheduleDue")
DEDUP_SECONDS = Histogram(
    "hopcast_content_dedup_seconds",
    "Time of one near-duplicate check",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
SIMILARITY = Counter("hopcast_content_similarity_total", "Drafts checked, by similarity band", ["band"])
EDITS = Counter(
    "hopcast_content_edits_total",
    "Reviewers' edits checked (PendingPostApproved with texts), by result: ACCEPTED or the refusal reason",
    ["result"],
)
EMBED_TEXTS = Histogram(
    "hopcast_content_embed_texts",
    "Texts the local embedder encoded in one call: the calls made while the previous one ran, coalesced",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
EMBED_SECONDS = Histogram(
    "hopcast_content_embed_seconds",
    "Time of one coalesced call of the local embedder, off the event loop",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
