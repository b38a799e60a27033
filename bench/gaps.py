"""Content-gap grouping on real paraphrases, against baselines that are told the answer.

    python bench/gaps.py [--fixtures 20] [--per-intent 5,15]

Each fixture is built at run time from BANKING77-OOS (``valid`` split, read from
``../shared/datasets``, never copied here): 10 intents drawn with a fixed seed, N paraphrases of
each taken from inside the intent's block (the first lines of many blocks are mislabelled
upstream), shuffled. Every method groups the same MiniLM vectors (the service's embedder) in the
same run:

- ``product``: :func:`bot.reports.gaps.group_questions` (average linkage, cosine threshold; does
  not know how many groups there are);
- ``kmeans-k``: k-means on the same vectors with k = the true number of intents (a baseline that
  is *given* the answer the product has to find);
- ``tfidf-kmeans-k``: k-means on TF-IDF word vectors, k known (no embedder at all);
- ``tfidf-average``: the product's clustering on TF-IDF vectors (threshold 0.9).

Figures: purity (share of questions in a group whose majority intent is theirs: 1.0 = no group
mixes topics), the number of groups (truth: 10), and the adjusted Rand index against the intents
(1.0 = the intents exactly, 0 = chance). Prints a table and JSON; writes bench/results/gaps.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.reports.gaps import DISTANCE_THRESHOLD, group_questions  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "banking77-oos" / "Datasets" / "BANKING77-OOS"
RESULTS = ROOT / "bench" / "results" / "gaps.json"
TEST_SEED = 77  # the fixture tests/unit/test_gaps.py asserts on
SKIP_BLOCK_START = 5  # lines at the start of an intent's block, often mislabelled upstream

Labels = list[int]
Method = Callable[[list[str], np.ndarray, int], Labels]


def intent_blocks(root: Path = DATASET) -> dict[str, list[str]]:
    """The ``valid`` questions of each intent, in file order."""
    split = root / "valid"
    texts = (split / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (split / "label").read_text(encoding="utf-8").splitlines()
    blocks: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels, strict=True):
        blocks[label].append(text.strip())
    return blocks


def paraphrase_fixture(
    blocks: dict[str, list[str]], seed: int, intents: int = 10, per_intent: int = 5
) -> list[tuple[str, str]]:
    """(question, intent) pairs: ``intents`` intents x ``per_intent`` paraphrases, shuffled."""
    rng = random.Random(seed)
    chosen = rng.sample(sorted(blocks), intents)
    pairs = [
        (question, intent)
        for intent in chosen
        for question in rng.sample(blocks[intent][SKIP_BLOCK_START:], per_intent)
    ]
    rng.shuffle(pairs)
    return pairs


def purity(labels: Sequence[int], truth: Sequence[str]) -> float:
    by_group: dict[int, Counter[str]] = defaultdict(Counter)
    for label, intent in zip(labels, truth, strict=True):
        by_group[label][intent] += 1
    return sum(max(counts.values()) for counts in by_group.values()) / len(truth)


def labels_of(groups: Sequence[Any], n: int) -> Labels:
    labels = [0] * n
    for number, group in enumerate(groups):
        for index in group.members:
            labels[index] = number
    return labels


def product(questions: list[str], vectors: np.ndarray, k: int) -> Labels:
    return labels_of(group_questions(questions, vectors.tolist()), len(questions))


def kmeans_k(questions: list[str], vectors: np.ndarray, k: int) -> Labels:
    from sklearn.cluster import KMeans

    return [int(x) for x in KMeans(k, n_init=10, random_state=0).fit_predict(vectors)]


def _tfidf(questions: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix: np.ndarray = TfidfVectorizer().fit_transform(questions).toarray()
    return matrix


def tfidf_kmeans_k(questions: list[str], vectors: np.ndarray, k: int) -> Labels:
    return kmeans_k(questions, _tfidf(questions), k)


def tfidf_average(questions: list[str], vectors: np.ndarray, k: int) -> Labels:
    groups = group_questions(questions, _tfidf(questions).tolist(), distance_threshold=0.9)
    return labels_of(groups, len(questions))


METHODS: dict[str, Method] = {
    "product": product,
    "kmeans-k": kmeans_k,
    "tfidf-kmeans-k": tfidf_kmeans_k,
    "tfidf-average": tfidf_average,
}


def run(fixtures: int, sizes: Sequence[int]) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    from ingest.embedder import get_embedder

    blocks = intent_blocks()
    embedder = get_embedder()
    seeds = [TEST_SEED, *range(fixtures - 1)]
    result: dict[str, Any] = {
        "dataset": "banking77-oos valid",
        "distance_threshold": DISTANCE_THRESHOLD,
        "seeds": seeds,
        "sizes": {},
    }
    for per_intent in sizes:
        rows: dict[str, list[tuple[float, int, float]]] = defaultdict(list)
        test_fixture: dict[str, dict[str, float]] = {}
        started = time.perf_counter()
        for seed in seeds:
            pairs = paraphrase_fixture(blocks, seed, per_intent=per_intent)
            questions = [q for q, _ in pairs]
            truth = [intent for _, intent in pairs]
            vectors = np.asarray(embedder.encode(questions))
            for name, method in METHODS.items():
                labels = method(questions, vectors, len(set(truth)))
                row = (purity(labels, truth), len(set(labels)), adjusted_rand_score(truth, labels))
                rows[name].append(row)
                if seed == TEST_SEED:
                    test_fixture[name] = {"purity": row[0], "groups": row[1], "ari": row[2]}
        summary = {
            name: {
                "purity": float(np.mean([r[0] for r in values])),
                "purity_min": float(np.min([r[0] for r in values])),
                "groups": float(np.mean([r[1] for r in values])),
                "ari": float(np.mean([r[2] for r in values])),
                "ari_min": float(np.min([r[2] for r in values])),
            }
            for name, values in rows.items()
        }
        product_ari = summary["product"]["ari"]
        for figures in summary.values():
            figures["ari_ratio_product_to_this"] = product_ari / figures["ari"]
        result["sizes"][str(per_intent)] = {
            "questions_per_fixture": 10 * per_intent,
            "mean_over_fixtures": summary,
            f"fixture_seed_{TEST_SEED}": test_fixture,
            "seconds": round(time.perf_counter() - started, 1),
        }
    return result


def print_table(result: dict[str, Any]) -> None:
    for size, block in result["sizes"].items():
        print(
            f"\n10 intents x {size} paraphrases, mean over {len(result['seeds'])} fixtures "
            f"(threshold {result['distance_threshold']}):"
        )
        print(
            f"{'method':16s} {'purity':>7s} {'(min)':>6s} {'groups':>7s} {'ARI':>6s} "
            f"{'(min)':>6s} {'product ARI / this':>19s}"
        )
        for name, f in block["mean_over_fixtures"].items():
            print(
                f"{name:16s} {f['purity']:7.3f} {f['purity_min']:6.2f} {f['groups']:7.1f} "
                f"{f['ari']:6.3f} {f['ari_min']:6.2f} {f['ari_ratio_product_to_this']:19.2f}"
            )
        seed_row = block[f"fixture_seed_{TEST_SEED}"]["product"]
        print(
            f"test fixture (seed {TEST_SEED}): product purity {seed_row['purity']:.3f}, "
            f"{seed_row['groups']} groups, ARI {seed_row['ari']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", type=int, default=20, help="fixtures per size (seeds)")
    parser.add_argument("--per-intent", default="5,15", help="paraphrases per intent, e.g. 5,15")
    args = parser.parse_args()
    if not DATASET.exists():
        sys.exit(f"dataset not found: {DATASET} (see ../shared/datasets/README.md)")
    sizes = [int(x) for x in args.per_intent.split(",") if x]
    result = run(args.fixtures, sizes)
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print("\n" + json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
