"""Embedders: all-MiniLM-L6-v2 run locally (`minilm`, the default; see minilm.py and
openvino_bert.py), feature hashing (`hashing`, lexical), and an OpenAI-compatible embeddings API.

The hashing embedder needs no model and no download: word unigrams and bigrams and
character 4-grams of the normalised text are hashed (blake2b, stable across processes)
into `dim` signed buckets, weighted by sub-linear term frequency, and L2-normalised. Equal
normalised texts get equal vectors (similarity 1.0); a light edit changes few features and
stays close; unrelated texts share few features and score near 0. It measures wording,
not meaning: a paraphrase in other words is not caught (the semantic embedders are for that).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence

import httpx

from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import Embedder, EmbeddingError, l2_normalise, normalise_text

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


@functools.lru_cache(maxsize=1 << 16)
def _feature_hash(feature: str) -> int:
    """A feature's stable 64-bit hash (blake2b); cached, since words, pairs and character
    grams recur from text to text (half of a draft's embedding time, uncached)."""
    return int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")


class HashingEmbedder:
    name = "hashing"

    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ValueError("dim must be at least 8")
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, text: str) -> Counter[str]:
        norm = normalise_text(text)
        words = _WORD.findall(norm)
        feats: Counter[str] = Counter()
        feats.update(f"w:{w}" for w in words)
        feats.update(f"b:{a} {b}" for a, b in itertools.pairwise(words))
        padded = f" {' '.join(words)} "
        feats.update(f"c:{padded[i : i + 4]}" for i in range(max(0, len(padded) - 3)))
        if not feats:
            feats["empty:"] = 1  # every empty text is the same text
        return feats

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for feature, count in self.features(text).items():
            h = _feature_hash(feature)
            weight = 1.0 + math.log(count)
            if feature.startswith("c:"):
                weight *= 0.5  # many character grams per word: keep words in charge
            vector[h % self._dim] += weight if (h >> 63) & 1 else -weight
        try:
            return l2_normalise(vector)
        except EmbeddingError:
            # All features cancelled out (vanishingly rare): fall back to a fixed direction.
            return l2_normalise([1.0] + [0.0] * (self._dim - 1))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]


class ApiEmbedder:
    """An OpenAI-compatible `POST {base}/embeddings` endpoint (OpenAI, vLLM, Ollama, TEI...),
    at most `batch_size` texts a request (servers cap a request's inputs: TEI's default is 32),
    so a consumer batch's drafts, embedded together, are never refused for their number."""

    name = "api"

    def __init__(
        self,
        base_url: str,
        model: str,
        dim: int,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        batch_size: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._batch_size = batch_size
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dim = dim
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s
        self._transport = transport

    @property
    def dim(self) -> int:
        return self._dim

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._request(texts[start : start + self._batch_size])
        return vectors

    async def _request(self, texts: Sequence[str]) -> list[list[float]]:
        payload = {"model": self._model, "input": list(texts), "dimensions": self._dim}
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
                response = await client.post(self._url, json=payload, headers=self._headers)
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"embeddings API: {type(exc).__name__}: {exc}") from exc
        if len(vectors) != len(texts) or any(len(v) != self._dim for v in vectors):
            raise EmbeddingError(f"embeddings API: expected {len(texts)} vectors of {self._dim} dimensions")
        return [l2_normalise(v) for v in vectors]


def make_embedder(settings: ContentSettings) -> Embedder:
    """The embedder the settings name."""
    if settings.embedder == "api":
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return ApiEmbedder(
            settings.embedding_api_url,
            settings.embedding_api_model,
            settings.embedding_dim,
            api_key=key,
            timeout_s=settings.embedding_api_timeout_s,
            batch_size=settings.embedding_api_batch_size,
        )
    if settings.embedder == "minilm":
        from hopcast_content.adapters.minilm import MiniLMEmbedder

        return MiniLMEmbedder.load(
            runtime=settings.embed_runtime, threads=settings.embed_threads, precision=settings.embed_precision
        )
    return HashingEmbedder(settings.embedding_dim)
