"""Paraphrases caught, unrelated posts not: precision and recall of content's duplicate rule for
each embedder, over the labelled pairs of bench/data/paraphrase_pairs.jsonl (posts written for the
demo's brands; how, in bench/data/README.md).

The rule is content's own: a draft is too similar when its cosine to a recent post is above
`ContentSettings().similarity_threshold` (CONTENT_SIMILARITY_THRESHOLD, the contract's 0.85;
`domain.duplicates.band`), and each embedder is the one `make_embedder` gives for its name.

- dedup_precision_<embedder>: of the pairs the rule flags, the share labelled paraphrase (0 when
  it flags none: `flagged` says so).
- dedup_recall_<embedder>: of the pairs labelled paraphrase, the share it flags.
- baseline: the same embedder's precision (recall) at its best-F1 threshold on the set, i.e.
  what the contract's threshold gives up against the best single threshold for that embedder.
  Not the hashing embedder's figure: it flags no pair at the contract's threshold, so its
  recall is 0 and its precision undefined, and a ratio to either means nothing; the semantic
  rows carry it beside (`hashing_value`), with the hashing embedder's best recall at equal or
  better precision (`hashing_recall_at_same_precision`).

Each row also carries the counts (flagged, true and false positives), F1 at the threshold, the
best-F1 threshold with its precision, recall and F1, the AUC (the chance that a paraphrase pair
scores above a distinct one), each label's cosine distribution and every pair's cosine.

Usage: .venv/bin/python bench/dedup_quality.py [--embedders hashing,minilm] [--semantic-pairs N]
       [--pairs FILE]
--semantic-pairs N scores only N pairs (half of each label, the first in the file) with the
embedders other than hashing (a quick run on a slow embedder). Prints one JSON row per figure;
needs no server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import percentile

from hopcast_content.adapters.embedders import make_embedder
from hopcast_content.config import ContentSettings
from hopcast_content.domain.duplicates import Band, band
from hopcast_content.domain.embedding import Embedder, cosine

PAIRS = Path(__file__).resolve().parent / "data" / "paraphrase_pairs.jsonl"
LABELS = ("paraphrase", "distinct")
EMBED_BATCH = 32


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: str
    brand: str
    note: str

    @property
    def paraphrase(self) -> bool:
        return self.label == "paraphrase"


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    return [Pair(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def balanced_subset(pairs: Sequence[Pair], n: int) -> list[Pair]:
    """The first n//2 paraphrase pairs and the first n - n//2 distinct ones, in file order."""
    wanted = {"paraphrase": n // 2, "distinct": n - n // 2}
    out = []
    for pair in pairs:
        if wanted[pair.label] > 0:
            wanted[pair.label] -= 1
            out.append(pair)
    return out


async def similarities(embedder: Embedder, pairs: Sequence[Pair]) -> list[float]:
    """Each pair's cosine under the embedder (each distinct text embedded once)."""
    texts = sorted({t for p in pairs for t in (p.a, p.b)}, key=len)  # like lengths batched together
    vectors: dict[str, list[float]] = {}
    for start in range(0, len(texts), EMBED_BATCH):
        chunk = texts[start : start + EMBED_BATCH]
        vectors.update(zip(chunk, await embedder.embed(chunk), strict=True))
    return [cosine(vectors[p.a], vectors[p.b]) for p in pairs]


def flagged(similarity: float, threshold: float) -> bool:
    """Content's decision: too similar above the threshold (a cosine equal to it proceeds)."""
    return band(similarity, threshold) is Band.TOO_SIMILAR


@dataclass(frozen=True)
class Confusion:
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def flagged(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def precision(self) -> float:
        """0 when nothing is flagged (scikit-learn's `precision_score` default)."""
        return self.true_positives / self.flagged if self.flagged else 0.0

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def confusion(sims: Sequence[float], truth: Sequence[bool], threshold: float) -> Confusion:
    tp = fp = fn = tn = 0
    for sim, paraphrase in zip(sims, truth, strict=True):
        hit = flagged(sim, threshold)
        tp += hit and paraphrase
        fp += hit and not paraphrase
        fn += not hit and paraphrase
        tn += not hit and not paraphrase
    return Confusion(tp, fp, fn, tn)


def cut_points(sims: Sequence[float]) -> list[float]:
    """Every threshold that makes a different decision: below the lowest score (all flagged),
    between each two neighbouring scores, and at the highest (none flagged)."""
    ordered = sorted(set(sims))
    if not ordered:
        return []
    return [ordered[0] - 1e-6, *((lo + hi) / 2 for lo, hi in itertools.pairwise(ordered)), ordered[-1]]


def best_f1(sims: Sequence[float], truth: Sequence[bool]) -> tuple[float, Confusion]:
    """The threshold with the best F1 on the set (of equals, the highest) and its confusion."""
    best = (0.0, Confusion(0, 0, sum(truth), len(truth) - sum(truth)))
    for threshold in cut_points(sims):
        c = confusion(sims, truth, threshold)
        if c.f1 >= best[1].f1:
            best = (threshold, c)
    return best


def recall_at_precision(sims: Sequence[float], truth: Sequence[bool], min_precision: float) -> float:
    """The best recall any threshold reaches while flagging something at a precision of at
    least `min_precision` (0 if none does)."""
    recalls = [
        c.recall
        for c in (confusion(sims, truth, t) for t in cut_points(sims))
        if c.flagged and c.precision >= min_precision
    ]
    return max(recalls, default=0.0)


def auc(sims: Sequence[float], truth: Sequence[bool]) -> float:
    """The chance that a paraphrase pair scores above a distinct one (ties count half)."""
    pos = [s for s, t in zip(sims, truth, strict=True) if t]
    neg = [s for s, t in zip(sims, truth, strict=True) if not t]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        **{f"p{q}": round(percentile(list(values), q), 3) for q in (10, 25, 50, 75, 90)},
        "max": round(max(values), 3),
    }


@dataclass(frozen=True)
class Scored:
    """One embedder's cosines over the pairs it scored, and how long embedding took."""

    embedder: str
    pairs: list[Pair]
    sims: list[float]
    embed_s: float

    @property
    def truth(self) -> list[bool]:
        return [p.paraphrase for p in self.pairs]

    def at(self, threshold: float) -> Confusion:
        return confusion(self.sims, self.truth, threshold)


async def score(name: str, pairs: Sequence[Pair]) -> Scored:
    embedder = make_embedder(ContentSettings(embedder=name))
    started = time.perf_counter()
    sims = await similarities(embedder, pairs)
    return Scored(name, list(pairs), sims, round(time.perf_counter() - started, 3))


def rows(scored: Sequence[Scored], threshold: float, total_pairs: int) -> list[dict[str, Any]]:
    """dedup_precision_<embedder> and dedup_recall_<embedder> for each embedder scored (on
    `total_pairs` or fewer)."""
    hashing = next((s for s in scored if s.embedder == "hashing"), None)
    out = []
    for s in scored:
        at, (best_threshold, best) = s.at(threshold), best_f1(s.sims, s.truth)
        details: dict[str, Any] = {
            "embedder": s.embedder,
            "threshold": threshold,
            "rule": "cosine > threshold (content's band TOO_SIMILAR)",
            "pairs": len(s.pairs),
            "paraphrase_pairs": sum(s.truth),
            "subset": len(s.pairs) < total_pairs,
            "flagged": at.flagged,
            "true_positives": at.true_positives,
            "false_positives": at.false_positives,
            "f1": round(at.f1, 3),
            "best_f1": {
                "threshold": round(best_threshold, 3),
                "f1": round(best.f1, 3),
                "precision": round(best.precision, 3),
                "recall": round(best.recall, 3),
                "flagged": best.flagged,
            },
            "auc": round(auc(s.sims, s.truth), 3),
            "cosine": {
                label: distribution([x for x, p in zip(s.sims, s.pairs, strict=True) if p.label == label])
                for label in LABELS
            },
            "cosines": {
                label: [round(x, 4) for x, p in zip(s.sims, s.pairs, strict=True) if p.label == label]
                for label in LABELS
            },
            "embed_s": s.embed_s,
        }
        if hashing is not None and s is not hashing:
            lexical = hashing.at(threshold)
            details["hashing_value"] = {"precision": round(lexical.precision, 3), "recall": round(lexical.recall, 3)}
            details["hashing_recall_at_same_precision"] = round(
                recall_at_precision(hashing.sims, hashing.truth, at.precision), 3
            )
        for figure, value, baseline in (
            ("precision", at.precision, best.precision),
            ("recall", at.recall, best.recall),
        ):
            out.append(
                {
                    "name": f"dedup_{figure}_{s.embedder}",
                    "value": round(value, 3),
                    "unit": figure,
                    "baseline_name": f"{figure}_at_best_f1_threshold",
                    "baseline_value": round(baseline, 3),
                    "ratio": round(value / baseline, 3),
                    **details,
                }
            )
    return out


async def run(embedders: Sequence[str], semantic_pairs: int | None, path: Path) -> list[dict[str, Any]]:
    pairs = load_pairs(path)
    threshold = ContentSettings().similarity_threshold
    scored = []
    for name in embedders:
        subset = pairs if name == "hashing" or semantic_pairs is None else balanced_subset(pairs, semantic_pairs)
        scored.append(await score(name, subset))
    return rows(scored, threshold, len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--embedders", default="hashing,minilm")
    parser.add_argument("--semantic-pairs", type=int, default=None, help="score only N pairs with the others")
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    args = parser.parse_args()
    for row in asyncio.run(run([e for e in args.embedders.split(",") if e], args.semantic_pairs, args.pairs)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
