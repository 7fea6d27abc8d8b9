"""The labelled pairs of bench/data are a fair test of the duplicate check (labels, lengths, no
pair twice, every demo brand, near misses among the distinct pairs), the figures are counted by
content's own rule, and the semantic embedder catches more paraphrases than the lexical one
without flagging more unrelated posts. That last one can fail: it is the point of the set."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import content_hash
from hopcast_stack.demo import ORGANIZATIONS

BENCH = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import dedup_quality
    finally:
        sys.path.remove(str(BENCH))
    return dedup_quality


def test_the_pairs_are_labelled_post_lengths_each_once_for_every_demo_brand(quality: ModuleType) -> None:
    lines = quality.PAIRS.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(set(r) == {"a", "b", "label", "brand", "note"} for r in records)
    pairs = quality.load_pairs()
    assert 60 <= len(pairs) <= 100

    labels = Counter(p.label for p in pairs)
    assert set(labels) == {"paraphrase", "distinct"}
    assert 0.4 <= labels["paraphrase"] / len(pairs) <= 0.6, labels

    short_or_long = [(p.note, len(t)) for p in pairs for t in (p.a, p.b) if not 100 <= len(t) <= 280]
    assert not short_or_long

    # Never the same text twice in a pair (the exact-copy hash would decide it, not an
    # embedder), and no pair twice, either way round.
    assert all(content_hash(p.a) != content_hash(p.b) for p in pairs)
    keys = [frozenset((content_hash(p.a), content_hash(p.b))) for p in pairs]
    assert len(set(keys)) == len(keys)

    demo_brands = {brand["name"] for org in ORGANIZATIONS for brand in org["brands"]}
    assert {p.brand for p in pairs} == demo_brands
    for brand in demo_brands:
        assert {p.label for p in pairs if p.brand == brand} == {"paraphrase", "distinct"}, brand

    near_misses = [p for p in pairs if p.note.startswith("near-miss")]
    assert len(near_misses) >= 10 and all(p.label == "distinct" for p in near_misses)
    assert all(p.note for p in pairs)


def test_the_figures_use_contents_rule_a_cosine_at_the_threshold_proceeds(quality: ModuleType) -> None:
    sims = [0.95, 0.85, 0.9, 0.2, 0.86, 0.5]
    truth = [True, True, False, True, False, False]
    at = quality.confusion(sims, truth, 0.85)
    assert (at.true_positives, at.false_positives, at.false_negatives, at.true_negatives) == (1, 2, 2, 1)
    assert at.precision == pytest.approx(1 / 3) and at.recall == pytest.approx(1 / 3)

    nothing = quality.confusion(sims, truth, 0.99)
    assert nothing.flagged == 0 and nothing.precision == 0.0 and nothing.recall == 0.0

    threshold, best = quality.best_f1(sims, truth)
    # Flagging all six: precision 1/2, recall 1, F1 2/3, better than any cut between them.
    assert best.flagged == 6 and best.f1 == pytest.approx(2 / 3) and threshold < 0.2
    assert quality.recall_at_precision(sims, truth, 0.9) == pytest.approx(1 / 3)
    assert quality.auc([0.9, 0.8], [True, False]) == 1.0


def test_the_semantic_embedder_catches_more_paraphrases_at_equal_or_better_precision(quality: ModuleType) -> None:
    pairs = quality.load_pairs()
    threshold = ContentSettings().similarity_threshold
    lexical = asyncio.run(quality.score("hashing", pairs))
    semantic = asyncio.run(quality.score("minilm", pairs))
    at = semantic.at(threshold)

    assert at.recall > lexical.at(threshold).recall
    # Wherever the lexical embedder's threshold is put, at the semantic one's precision or
    # better it catches fewer paraphrases than the semantic one at the contract's threshold.
    assert at.flagged > 0
    assert quality.recall_at_precision(lexical.sims, lexical.truth, at.precision) < at.recall
    # And the semantic cosine ranks paraphrases above the hard negatives more often than not.
    assert quality.auc(semantic.sims, semantic.truth) > max(0.5, quality.auc(lexical.sims, lexical.truth))
