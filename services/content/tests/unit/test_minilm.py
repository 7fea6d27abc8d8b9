"""The semantic embedder's parts on a tiny model made here: its tokenizer, safetensors reader,
and both encoders (the numpy reference and the OpenVINO graph built from the same weights).
all-MiniLM-L6-v2 itself: test_minilm_model.py."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

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


def test_the_basic_pass_cleans_lowercases_and_splits_like_bert() -> None:
    """ASCII words take a short path, other words the full one: both as BertTokenizer splits."""
    tok = WordPieceTokenizer({w: i for i, w in enumerate(VOCAB)})
    text = "Don't STOP!! a\x0bb\tc\x00d Καφές ΟΔΟΣ e\u0301x 中文 🎉#coffee $5 x\u2003y"
    assert tok._basic(text) == [
        *("don", "'", "t", "stop", "!", "!", "ab", "cd", "καφες", "οδος", "ex", "中", "文", "🎉"),
        *("#", "coffee", "$", "5", "x", "y"),
    ]


def test_safetensors_reader_round_trips(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_safetensors(tmp_path / "x.safetensors", {"a": array})
    assert np.array_equal(read_safetensors(tmp_path / "x.safetensors")["a"], array)


@pytest.mark.parametrize("runtime", ["numpy", "openvino"])
async def test_tiny_bert_embeds_normalised_and_ignores_padding(tiny_model: Path, runtime: str) -> None:
    e = MiniLMEmbedder.load(tiny_model, runtime=runtime)
    assert e.dim == 8
    [alone] = await e.embed(["we roast coffee"])
    batch = await e.embed(["we roast coffee", "unaffable coffee , we roast cafe we roast"])
    assert math.isclose(sum(x * x for x in alone), 1.0, rel_tol=1e-5)
    # The short text is padded in the batch: masking must make that change nothing.
    assert np.allclose(alone, batch[0], atol=1e-5)
    assert cosine(batch[0], batch[1]) < 0.9999
    assert await e.embed([]) == []


def test_the_openvino_graph_computes_what_the_numpy_reference_does(tiny_model: Path) -> None:
    """Built from the same random weights, in f32: the same vectors, padding and all."""
    texts = ["we roast coffee", "unaffable coffee , we roast cafe we roast", "!", "cafe " * 20]
    reference = MiniLMEmbedder.load(tiny_model, runtime="numpy").embed_sync(texts)
    compiled = MiniLMEmbedder.load(tiny_model, runtime="openvino", precision="f32")
    assert compiled.encoder.precision == "f32"
    assert np.allclose(compiled.embed_sync(texts), reference, atol=1e-5)


def test_each_padded_length_and_the_fallback_give_the_same_vectors(tiny_model: Path) -> None:
    """Lengths padded to a multiple of 8, run by models compiled per length until the limit,
    then by the any-length model: the vectors do not depend on which ran them."""
    from hopcast_content.adapters.minilm import BertConfig
    from hopcast_content.adapters.openvino_bert import OpenVinoEncoder

    config = BertConfig.from_file(tiny_model / "config.json")
    tensors = read_safetensors(tiny_model / "model.safetensors")
    texts = ["we roast coffee", "unaffable coffee , we roast cafe we roast", "cafe " * 12, "cafe " * 20]
    reference = MiniLMEmbedder.load(tiny_model, runtime="numpy").embed_sync(texts)
    encoder = OpenVinoEncoder(config, tensors, precision="f32", static_lengths=2)
    embedder = MiniLMEmbedder(WordPieceTokenizer.from_file(tiny_model / "vocab.txt"), encoder, batch_size=1)
    assert np.allclose(embedder.embed_sync(texts), reference, atol=1e-5)
    assert sorted(encoder._by_length) == [8, 16]  # 5, 12 and 14 tokens; 22 ran on the fallback
