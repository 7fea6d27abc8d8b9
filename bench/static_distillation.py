"""A static distillation of all-MiniLM-L6-v2 weighed against the encoder (issue 21: the fastest
honest path, with its loss stated). Not part of `make bench`: it measured a decision (not to adopt
it), recorded in bench/README.md under "What the 0.85 threshold means for each embedder".

Model2vec's recipe without its training: every vocabulary token is run through the encoder alone
(`[CLS] token [SEP]`, mean-pooled, as the embedder pools), and a text's vector is the mean of its
tokens' vectors, L2-normalised. Variants: the tokens weighted by the log of their rank in the
vocabulary, and the vectors' mean direction removed.

For each, over bench/data's labelled pairs (dedup_quality.py's own rule and measures): precision
and recall at the contract's threshold, the best F1 on the set, the AUC; and for the plain mean,
its cosine to the encoder's vector of the same draft (bench/embedder.py's drafts) and its CPU time
per draft.

Usage: .venv/bin/python bench/static_distillation.py   (about a minute; no server). Prints one
JSON object per variant.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from dedup_quality import auc, best_f1, confusion, load_pairs
from embedder import drafts

from hopcast_content.adapters.minilm import MiniLMEmbedder
from hopcast_content.config import ContentSettings

F32 = npt.NDArray[np.float32]
Embed = Callable[[Sequence[str]], F32]


def distil(encoder: MiniLMEmbedder, batch: int = 512) -> F32:
    """Each vocabulary token's vector: the token alone through the encoder."""
    size = len(encoder.tokenizer.vocab)
    vectors = np.zeros((size, encoder.dim), np.float32)
    cls, sep = encoder.tokenizer.cls, encoder.tokenizer.sep
    for start in range(0, size, batch):
        ids = np.arange(start, min(start + batch, size), dtype=np.int64)
        padded = np.stack([np.full(len(ids), cls), ids, np.full(len(ids), sep)], axis=1)
        vectors[start : start + len(ids)] = encoder.encoder(padded, np.ones(padded.shape, np.float32))
    return vectors


def static_embedder(encoder: MiniLMEmbedder, table: F32, weights: F32 | None, centre: F32 | None) -> Embed:
    def embed(texts: Sequence[str]) -> F32:
        out = np.zeros((len(texts), table.shape[1]), np.float32)
        for row, text in enumerate(texts):
            ids = encoder.tokenizer.encode(text, encoder.max_tokens)[1:-1] or [encoder.tokenizer.sep]
            tokens = table[ids] if weights is None else table[ids] * weights[ids, None]
            vector = tokens.mean(axis=0) - (0 if centre is None else centre)
            out[row] = vector / np.linalg.norm(vector)
        return out

    return embed


def main() -> None:
    encoder = MiniLMEmbedder.load(threads=1)
    started = time.process_time()
    table = distil(encoder)
    distil_s = time.process_time() - started
    pairs = load_pairs()
    truth = [p.paraphrase for p in pairs]
    threshold = ContentSettings().similarity_threshold

    def encoded(texts: Sequence[str]) -> F32:
        return np.array(asyncio.run(encoder.embed(list(texts))), np.float32)

    rank = np.log1p(np.arange(len(table), dtype=np.float32))
    variants: dict[str, Embed] = {
        "minilm": encoded,
        "static_mean": static_embedder(encoder, table, None, None),
        "static_log_rank_weighted": static_embedder(encoder, table, rank, None),
        "static_mean_direction_removed": static_embedder(encoder, table, None, table.mean(axis=0)),
    }
    texts = list(dict.fromkeys(drafts(256)))
    reference = encoded(texts)
    for name, embed in variants.items():
        a, b = embed([p.a for p in pairs]), embed([p.b for p in pairs])
        sims = [float(x) for x in (a * b).sum(axis=1)]
        at = confusion(sims, truth, threshold)
        best_threshold, best = best_f1(sims, truth)
        cpu = time.process_time()
        vectors = embed(texts)
        ms = (time.process_time() - cpu) * 1000 / len(texts)
        agreement = (vectors * reference).sum(axis=1)
        row = {
            "variant": name,
            "threshold": threshold,
            "precision": round(at.precision, 3),
            "recall": round(at.recall, 3),
            "flagged": at.flagged,
            "pairs": len(pairs),
            "best_f1": round(best.f1, 3),
            "best_f1_threshold": round(best_threshold, 3),
            "auc": round(auc(sims, truth), 3),
            "cosine_to_minilm_mean": round(float(agreement.mean()), 4),
            "cosine_to_minilm_min": round(float(agreement.min()), 4),
            "cpu_ms_per_draft": round(ms, 4),
            "distil_cpu_s": round(distil_s, 1),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
