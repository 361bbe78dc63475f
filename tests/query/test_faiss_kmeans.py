"""faiss k-means and the sparse nearest-to-centre matching against scikit-learn and the full
Hungarian matching (issue 18): the same rule, inertia within 1 %, the same coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from unisal.query import faiss_kmeans, scores
from unisal.query.scores import compact_selection, pairwise_sq_distances

pytestmark = pytest.mark.skipif(not faiss_kmeans.available(), reason="faiss-cpu is not installed")


def clustered(n: int, d: int = 32, k: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_the_sparse_matching_equals_the_full_hungarian_matching() -> None:
    rng = np.random.default_rng(1)
    for trial in range(20):
        points = rng.normal(size=(300, 8)).astype(np.float32)
        centres = (
            points[rng.choice(300, 25, replace=False)] + rng.normal(size=(25, 8)).astype(np.float32) * 0.3
        )
        if trial % 2:  # crowd the centres so that several share a nearest point
            centres = centres[:1] + rng.normal(size=(25, 8)).astype(np.float32) * 0.05
        _, full = linear_sum_assignment(
            pairwise_sq_distances(centres.astype(np.float64), points.astype(np.float64))
        )
        sparse = faiss_kmeans.nearest_one_to_one(centres, points, neighbours=2)
        assert len(set(sparse.tolist())) == 25
        cost = pairwise_sq_distances(centres.astype(np.float64), points.astype(np.float64))
        assert cost[np.arange(25), sparse].sum() == pytest.approx(cost[np.arange(25), full].sum(), rel=1e-5)


def test_faiss_inertia_is_within_one_percent_of_scikit_learns() -> None:
    x = clustered(20_000)
    rng = np.random.default_rng(0)
    centres, _ = faiss_kmeans.kmeans_centres(x, 100, rng, n_init=3)
    faiss_inertia = pairwise_sq_distances(x.astype(np.float64), centres.astype(np.float64)).min(axis=1).sum()
    sk = KMeans(n_clusters=100, n_init=3, random_state=0).fit(x.astype(np.float64))
    assert faiss_inertia <= sk.inertia_ * 1.01


def test_compact_selection_switches_to_faiss_for_large_pools_and_covers_as_well() -> None:
    x = clustered(25_000, k=60, seed=3)
    rng = np.random.default_rng(0)
    chosen = compact_selection(x, 60, rng)  # auto: faiss from 20,000 points
    assert len(np.unique(chosen)) == 60
    small = x[:5_000]
    same = [compact_selection(small, 30, np.random.default_rng(4), engine=e) for e in ("sklearn", "auto")]
    assert np.array_equal(same[0], same[1])  # below the threshold, auto is scikit-learn: as before
    # coverage: the mean distance of the pool to the chosen points, faiss vs scikit-learn
    sk = compact_selection(x, 60, np.random.default_rng(0), engine="sklearn")

    def cover(c: np.ndarray) -> float:
        return float(
            np.sqrt(pairwise_sq_distances(x.astype(np.float64), x[c].astype(np.float64)).min(axis=1)).mean()
        )

    assert cover(chosen) <= cover(sk) * 1.02


def test_badge_seeds_from_the_factors_equal_those_of_the_built_gradient_embeddings() -> None:
    rng = np.random.default_rng(5)
    logits, hidden = rng.normal(size=(400, 4)) * 2, rng.normal(size=(400, 16))
    built = scores.kmeans_pp_seeds(scores.gradient_embeddings(logits, hidden), 30, np.random.default_rng(7))
    a, h = scores.gradient_factors(logits, hidden)
    factored = scores.kmeans_pp_seeds_outer(a, h, 30, np.random.default_rng(7))
    assert factored.tolist() == built.tolist()
    assert np.allclose(np.linalg.norm(a, axis=1) * np.linalg.norm(h, axis=1),
                       np.linalg.norm(scores.gradient_embeddings(logits, hidden), axis=1), rtol=1e-5)  # fmt: skip


def test_k_center_greedy_in_float32_for_large_pools_picks_as_in_float64(monkeypatch) -> None:
    pool = clustered(3_000, d=16, k=30, seed=6)
    labelled = pool[:5] + 0.5
    small = scores.k_center_greedy(pool, labelled, 40, np.random.default_rng(0))
    monkeypatch.setattr(scores, "FAISS_FROM", 1_000)  # the large-pool path at a size we can compare
    large = scores.k_center_greedy(pool, labelled, 40, np.random.default_rng(0))
    assert large[0].tolist() == small[0].tolist()
    np.testing.assert_allclose(large[1], small[1])


def test_typiclust_on_faiss_clusters_is_within_one_percent_and_covers_distinct_clusters(monkeypatch) -> None:
    x = clustered(24_000, d=16, k=50, seed=8)

    def inertia(assign: np.ndarray) -> float:
        return float(sum(((x[assign == c] - x[assign == c].mean(0)) ** 2).sum() for c in np.unique(assign)))

    # one k-means run each (as TypiClust clusters): single runs vary by +-10 % with the seed here,
    # so the mean over four seeds is compared
    faiss_runs = [inertia(faiss_kmeans.kmeans_labels(x, 50, np.random.default_rng(s))) for s in range(4)]
    sk_runs = [inertia(KMeans(n_clusters=50, n_init=1, random_state=s).fit(x).labels_) for s in range(4)]
    assert np.mean(faiss_runs) <= np.mean(sk_runs) * 1.01
    # no labels: k = budget clusters, and each pick covers a cluster not yet covered
    chosen, clusters = scores.typiclust_select(x, x[:0], 40, np.random.default_rng(1), max_clusters=50)
    assert len(np.unique(chosen)) == 40 and len(set(clusters)) == 40


def test_badge_seeds_of_a_large_pool_in_float32_are_those_in_float64(monkeypatch) -> None:
    rng = np.random.default_rng(9)
    logits, hidden = rng.normal(size=(3_000, 5)) * 2, rng.normal(size=(3_000, 32)).astype(np.float32)
    a, h = scores.gradient_factors(logits, hidden)
    in_float64 = scores.kmeans_pp_seeds_outer(a, h, 40, np.random.default_rng(3))
    monkeypatch.setattr(scores, "FAISS_FROM", 1_000)  # the large-pool path at a size we can compare
    a32, h32 = scores.gradient_factors(logits, hidden)
    assert h32.dtype == np.float32 and a32.dtype == np.float64
    assert (
        scores.kmeans_pp_seeds_outer(a32, h32, 40, np.random.default_rng(3)).tolist() == in_float64.tolist()
    )
