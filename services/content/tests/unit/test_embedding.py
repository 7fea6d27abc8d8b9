"""The offline embedder's properties: deterministic, normalised, exact copies at 1.0, light
edits high, unrelated texts low; and the API embedder's contract."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from hopcast_content.adapters.embedders import ApiEmbedder, HashingEmbedder, make_embedder
from hopcast_content.adapters.minilm import MiniLMEmbedder, ReferenceEncoder
from hopcast_content.adapters.openvino_bert import OpenVinoEncoder
from hopcast_content.config import ContentSettings
from hopcast_content.domain.duplicates import THRESHOLD, Band, Verdict, band
from hopcast_content.domain.embedding import EmbeddingError, content_hash, cosine, l2_normalise

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Our roaster checks every batch."
OTHER = "Grind finer for espresso and coarser for French press; adjust one step at a time and taste."


async def test_vectors_are_deterministic_normalised_and_of_the_configured_dimension() -> None:
    for dim in (64, 384, 768):
        embedder = HashingEmbedder(dim)
        [a, b] = await embedder.embed([TEXT, TEXT])
        assert a == b and len(a) == dim
        assert math.isclose(math.fsum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert HashingEmbedder(384).embed_one(TEXT) == HashingEmbedder(384).embed_one(TEXT)  # no per-process salt


def test_exact_copies_score_one_and_case_and_spacing_do_not_matter() -> None:
    e = HashingEmbedder()
    assert cosine(e.embed_one(TEXT), e.embed_one(TEXT)) == pytest.approx(1.0)
    assert cosine(e.embed_one(TEXT), e.embed_one("  " + TEXT.upper().replace(" ", "   "))) == pytest.approx(1.0)
    assert content_hash(TEXT) == content_hash(TEXT.upper().replace(" ", "\n "))
    assert content_hash(TEXT) != content_hash(OTHER)


def test_light_edits_stay_above_the_threshold_and_unrelated_texts_are_far_below() -> None:
    e = HashingEmbedder()
    edited = TEXT.replace("Tuesday", "Wednesday").replace("checks", "tastes")
    assert cosine(e.embed_one(TEXT), e.embed_one(edited)) > THRESHOLD
    assert cosine(e.embed_one(TEXT), e.embed_one(OTHER)) < 0.3
    assert cosine(e.embed_one(""), e.embed_one("")) == pytest.approx(1.0)


def test_similarity_bands_follow_the_design() -> None:
    assert band(0.2) is Band.UNIQUE and band(0.6) is Band.DIFFERENT_ENOUGH
    assert band(0.8) is Band.SIMILAR and band(0.85) is Band.SIMILAR and band(0.851) is Band.TOO_SIMILAR
    assert Verdict(0.5, 0.9).too_similar() and Verdict(0.1, 0.1, exact_copy=True).too_similar()
    assert not Verdict(0.85, 0.85).too_similar()


def test_normalising_refuses_a_zero_vector() -> None:
    with pytest.raises(EmbeddingError):
        l2_normalise([0.0, 0.0])


async def test_api_embedder_normalises_and_checks_the_dimension() -> None:
    def handle(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        assert body["model"] == "m" and body["dimensions"] in (4, 8)
        data = [{"index": i, "embedding": [3.0, 4.0, 0.0, 0.0]} for i, _ in enumerate(body["input"])]
        return httpx.Response(200, json={"data": list(reversed(data))})

    api = ApiEmbedder("http://emb.test/v1/", "m", 4, transport=httpx.MockTransport(handle))
    assert await api.embed(["a", "b"]) == [[0.6, 0.8, 0.0, 0.0]] * 2
    wrong = ApiEmbedder("http://emb.test/v1", "m", 8, transport=httpx.MockTransport(handle))
    with pytest.raises(EmbeddingError, match="8 dimensions"):
        await wrong.embed(["a"])
    down = ApiEmbedder("http://emb.test/v1", "m", 4, transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(EmbeddingError):
        await down.embed(["a"])


async def test_api_embedder_splits_a_batch_into_requests_of_its_size() -> None:
    sizes: list[int] = []

    def handle(req: httpx.Request) -> httpx.Response:
        texts = json.loads(req.content)["input"]
        sizes.append(len(texts))
        return httpx.Response(
            200, json={"data": [{"index": i, "embedding": [float(t), 1.0]} for i, t in enumerate(texts)]}
        )

    api = ApiEmbedder("http://emb.test/v1", "m", 2, batch_size=3, transport=httpx.MockTransport(handle))
    vectors = await api.embed([str(n) for n in range(7)])
    assert sizes == [3, 3, 1]
    assert [round(v[0] / v[1]) for v in vectors] == list(range(7))  # each text's own vector, in order


def test_settings_choose_the_embedder() -> None:
    default = make_embedder(ContentSettings())
    assert isinstance(default, MiniLMEmbedder) and isinstance(default.encoder, OpenVinoEncoder)
    reference = make_embedder(ContentSettings(embedder="minilm", embed_runtime="numpy"))
    assert isinstance(reference, MiniLMEmbedder) and isinstance(reference.encoder, ReferenceEncoder)
    assert isinstance(make_embedder(ContentSettings(embedder="hashing")), HashingEmbedder)
    assert make_embedder(ContentSettings(embedder="hashing", embedding_dim=128)).dim == 128
    assert isinstance(make_embedder(ContentSettings(embedder="api", embedding_dim=16)), ApiEmbedder)
    with pytest.raises(ValueError, match="384"):
        ContentSettings(embedder="minilm", embedding_dim=128)
