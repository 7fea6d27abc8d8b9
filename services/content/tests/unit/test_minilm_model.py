"""all-MiniLM-L6-v2 itself (its weights come with `make venv`, from the pinned package): the
vectors other implementations publish, the OpenVINO runtime held to the numpy reference on
written and generated texts, paraphrases caught, and how `embed` batches and coalesces."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.adapters.minilm import MiniLMEmbedder
from hopcast_content.domain.embedding import EmbeddingError, cosine

# Published by others for this model: the model card's example (sentence-transformers), and
# the ONNX port Qdrant's fastembed tests itself against ("hello world").
MODEL_CARD = ("This is an example sentence", [0.0677, 0.0635, 0.0487, 0.0793])
FASTEMBED = ("hello world", [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])

TEXTS = [
    "Fresh from the roaster: Ethiopia Yirgacheffe, with jasmine and lemon notes. Try it as a pour-over this weekend.",
    "Join us Saturday at 9am for a free beginner yoga class in the park. Bring a mat and a friend! 🧘‍♀️",
    "20% off oat flat whites before 10am, every weekday ☕ #NorthwindCoffee #MondayMotivation",
    "Café crème et croissants : notre nouvelle carte d'automne arrive jeudi à Lyon.",
    "新しいヨガスタジオが渋谷にオープンしました。",
    "",
    "!",
    "unaffable " * 300,  # longer than 256 tokens: truncated the same way by both
    "https://northwind.example/beans?origin=ethiopia&roast=light @lumen_yoga",
]


@pytest.fixture(scope="module")
def reference() -> MiniLMEmbedder:
    return MiniLMEmbedder.load(runtime="numpy")


@pytest.fixture(scope="module")
def default() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()  # OpenVINO, the precision it picks for this CPU


def test_both_runtimes_give_the_published_vectors(reference: MiniLMEmbedder, default: MiniLMEmbedder) -> None:
    for text, published in (MODEL_CARD, FASTEMBED):
        [exact] = reference.embed_sync([text])
        [fast] = default.embed_sync([text])
        assert np.allclose(exact[: len(published)], published, atol=1e-4)
        assert np.allclose(fast[: len(published)], published, atol=1e-3)  # fastembed's own tolerance


def test_openvino_agrees_with_the_reference_to_a_cosine_of_0_999(
    reference: MiniLMEmbedder, default: MiniLMEmbedder
) -> None:
    for a, b in zip(reference.embed_sync(TEXTS), default.embed_sync(TEXTS), strict=True):
        assert cosine(a, b) >= 0.999


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(max_size=400), min_size=1, max_size=6))
def test_any_texts_agree_and_come_back_in_order(reference: MiniLMEmbedder, default: MiniLMEmbedder, texts: Any) -> None:
    exact = reference.embed_sync(texts)
    batched = default.embed_sync(texts)  # sorted by length, padded per batch, put back in order
    for a, b in zip(exact, batched, strict=True):
        assert len(b) == 384 and cosine(a, b) >= 0.999


def test_paraphrases_score_above_the_threshold_and_unrelated_posts_below(default: MiniLMEmbedder) -> None:
    a, b, c = default.embed_sync(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert cosine(a, b) == pytest.approx(0.7553, abs=3e-3) and cosine(a, c) < 0.1  # the model card's pairs
    original = "We roast our coffee every Tuesday so each bag is fresh."
    paraphrase = "Every Tuesday we roast beans, so your bag is always fresh."
    unrelated = "Our new store opens in Leeds next month with free pastries."
    o, p, u = default.embed_sync([original, paraphrase, unrelated])
    assert cosine(o, p) > 0.85 > cosine(o, u)
    h = HashingEmbedder()
    assert cosine(h.embed_one(original), h.embed_one(paraphrase)) < 0.85  # wording differs: hashing misses it


class Counting:
    """An encoder that counts its calls, and fails while told to."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.failing = inner, 0, False
        self.dim, self.precision = inner.dim, inner.precision

    def __call__(self, ids: Any, mask: Any) -> Any:
        self.calls += 1
        if self.failing:
            raise RuntimeError("device lost")
        return self.inner(ids, mask)


async def test_calls_made_together_are_encoded_in_one_batch(default: MiniLMEmbedder) -> None:
    counting = Counting(default.encoder)
    e = MiniLMEmbedder(default.tokenizer, counting, batch_size=16)
    texts = [f"Post {i}: {TEXTS[i % 5]}" for i in range(12)]
    before = [REGISTRY.get_sample_value(f"hopcast_content_embed_texts_{s}") or 0.0 for s in ("count", "sum")]
    results = await asyncio.gather(*(e.embed([t]) for t in texts))
    assert counting.calls == 1  # twelve lanes drafting at once: one batch
    after = [REGISTRY.get_sample_value(f"hopcast_content_embed_texts_{s}") or 0.0 for s in ("count", "sum")]
    assert (after[0] - before[0], after[1] - before[1]) == (1, 12)  # what the metric tells an operator
    for [vector], expected in zip(results, default.embed_sync(texts), strict=True):
        assert cosine(vector, expected) >= 0.9999


async def test_a_failed_batch_fails_each_caller_and_the_next_call_works(default: MiniLMEmbedder) -> None:
    counting = Counting(default.encoder)
    e = MiniLMEmbedder(default.tokenizer, counting)
    counting.failing = True
    outcomes = await asyncio.gather(e.embed(["a"]), e.embed(["b", "c"]), return_exceptions=True)
    assert all(isinstance(o, EmbeddingError) and "device lost" in str(o) for o in outcomes)
    counting.failing = False
    assert len(await e.embed(["a", "b"])) == 2


async def test_a_cancelled_caller_leaves_the_others_their_vectors(default: MiniLMEmbedder) -> None:
    e = MiniLMEmbedder(default.tokenizer, default.encoder)
    leaving = asyncio.create_task(e.embed(["leaving"]))
    staying = asyncio.create_task(e.embed(["staying", "here"]))
    await asyncio.sleep(0)
    leaving.cancel()
    assert len(await staying) == 2
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_stopping_embedder_cancels_its_callers_instead_of_leaving_them_waiting(
    default: MiniLMEmbedder,
) -> None:
    e = MiniLMEmbedder(default.tokenizer, default.encoder)
    first = asyncio.create_task(e.embed(["first"]))
    await asyncio.sleep(0)  # the drain has started and taken "first"
    second = asyncio.create_task(e.embed(["second"]))
    await asyncio.sleep(0)
    assert e._draining is not None
    e._draining.cancel()
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert e._draining is None and e._waiting == []
    assert len(await e.embed(["after"])) == 1  # and it starts again
