"""The default embedder (all-MiniLM-L6-v2 on OpenVINO) on the drafts content writes, beside the
numpy reference running the same model in f32.

- embed_ms_per_draft: CPU time per draft (of the whole process) of `MiniLMEmbedder.embed_sync`
  with one inference thread (OpenVINO's INFERENCE_NUM_THREADS=1), texts bucketed by length in batches of 16 as a
  consumer round hands them over, tokenizer included; the best of --rounds rounds. Baseline:
  the numpy reference on the same drafts (a sample of them, the reference is slow).
- embed_agreement_min_cosine: the lowest cosine between the two runtimes' vectors of a draft,
  over every draft the reference embedded. Baseline: 1.0 (the reference against itself). The
  mean and the precision OpenVINO chose for this CPU are in the row.

The drafts: the template writer's (the default generator) for every material of the demo's
brands, every angle, on MASTODON and BLUESKY, repeated with each brand's voice until --drafts;
their token counts are in the row.

Usage: .venv/bin/python bench/embedder.py [--drafts 512] [--reference-drafts 64] [--rounds 5]
(--database-url is taken and unused: bench/run.py gives every script one.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import uuid

import numpy as np

from hopcast_content.adapters.minilm import MiniLMEmbedder
from hopcast_content.domain.drafting import BrandVoice, DraftRequest, MaterialText, TemplateGenerator
from hopcast_shared.contract import Angle, Platform
from hopcast_stack.demo import ORGANIZATIONS


def drafts(count: int) -> list[str]:
    """`count` drafts of the template writer on the demo's materials, every angle."""
    requests = []
    for organization in ORGANIZATIONS:
        for brand in organization["brands"]:
            voice = BrandVoice.from_profile(brand["name"], brand)
            for (pillar, title, body), angle in itertools.product(brand["materials"], Angle):
                material = MaterialText(uuid.uuid4(), "TEXT", title, body, content_pillar=pillar)
                requests.append(DraftRequest(material, voice, (Platform.MASTODON, Platform.BLUESKY), angle, "bench"))
    writer = TemplateGenerator()
    texts = [writer.write(r).content for r in requests]
    return list(itertools.islice(itertools.cycle(texts), count))


def ms_per_text(embedder: MiniLMEmbedder, texts: list[str], rounds: int) -> tuple[float, float]:
    """The best round's CPU ms per text of this whole process (every thread OpenVINO runs
    included), and its wall ms per text."""
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        embedder.embed_sync(texts)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu * 1000 / len(texts), best_wall * 1000 / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=512)
    parser.add_argument("--reference-drafts", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="unused")
    args = parser.parse_args()

    texts = drafts(args.drafts)
    fast = MiniLMEmbedder.load(threads=1)
    reference = MiniLMEmbedder.load(runtime="numpy")
    sample = texts[: args.reference_drafts]
    fast.embed_sync(texts)  # the first batch of each padded length compiles its model: not a draft's cost
    value, wall = ms_per_text(fast, texts, args.rounds)
    baseline, _ = ms_per_text(reference, sample, 1)
    tokens = [len(fast.tokenizer.encode(t, fast.max_tokens)) for t in texts]
    common = {
        "drafts": len(texts),
        "distinct_drafts": len(set(texts)),
        "tokens_mean": round(statistics.fmean(tokens), 1),
        "tokens_max": max(tokens),
        "chars_mean": round(statistics.fmean(len(t) for t in texts), 1),
        "batch_size": fast.batch_size,
        "precision": fast.encoder.precision,
        "threads": 1,
    }
    print(
        json.dumps(
            {
                "name": "embed_ms_per_draft",
                "value": round(value, 3),
                "unit": "ms CPU/draft",
                "baseline_name": "numpy reference, same model in f32",
                "baseline_value": round(baseline, 3),
                "ratio": round(baseline / value, 1),
                "wall_ms_per_draft": round(wall, 3),
                "reference_drafts": len(sample),
                **common,
            }
        )
    )
    exact = np.array(reference.embed_sync(sample))
    compiled = np.array(fast.embed_sync(sample))
    cosines = (exact * compiled).sum(axis=1)
    print(
        json.dumps(
            {
                "name": "embed_agreement_min_cosine",
                "value": round(float(cosines.min()), 6),
                "unit": "cosine",
                "baseline_name": "the f32 reference against itself",
                "baseline_value": 1.0,
                "ratio": round(float(cosines.min()), 6),
                "mean_cosine": round(float(cosines.mean()), 6),
                "reference_drafts": len(sample),
                **common,
            }
        )
    )


if __name__ == "__main__":
    main()
