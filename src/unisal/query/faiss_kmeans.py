"""k-means and the nearest-to-centre rule at scale, with faiss (``faiss-cpu``): what
``scores.compact_selection`` does with scikit-learn, for pools too large for it (issue 18).

Two differences from the scikit-learn path, both kept small and measured in the tests: faiss's
k-means (Lloyd in float32, the best of ``n_init`` runs, each from k-means++ seeds, with at most
``MAX_POINTS_PER_CENTRE`` points per centre sampled for training), and the one-to-one matching
of points to centres solved over each centre's ``neighbours`` nearest points only (a sparse
minimum-weight full matching) instead of every point: the same choice whenever the full optimum
uses only those neighbours, which holds whenever each centre's own nearest point is distinct; the
neighbourhood grows until a full matching exists.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS_PER_CENTRE = 256  # faiss's default training sample per centre
SEED_SAMPLE_PER_CENTRE = 40  # k-means++ seeds are drawn from at most this many points per centre
CHUNK = 65_536  # rows converted to float32 at a time


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def as_float32(features: np.ndarray) -> np.ndarray:
    """(M, D) float32, C-contiguous: ``features`` itself when it is one, else a copy converted
    chunk by chunk (a float16 memory map is never converted whole at float64)."""
    if features.dtype == np.float32 and features.flags.c_contiguous:
        return features
    out = np.empty(features.shape, np.float32)
    for lo in range(0, len(features), CHUNK):
        out[lo : lo + CHUNK] = features[lo : lo + CHUNK]
    return out


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds (k, D) float32 of the rows of ``x`` (N, D) float32, as
    scikit-learn seeds: the first at random; then, each time, 2 + log(k) candidates drawn with
    probability proportional to their squared distance to the nearest seed, and the one that
    lowers the total most is kept."""
    trials = 2 + int(np.log(k))
    seeds = np.empty((k, x.shape[1]), np.float32)
    seeds[0] = x[rng.integers(len(x))]
    sq = (x * x).sum(axis=1)
    nearest = np.maximum(sq - 2 * x @ seeds[0] + seeds[0] @ seeds[0], 0.0)
    for j in range(1, k):
        total = float(nearest.sum())
        if total <= 0:
            seeds[j] = x[rng.integers(len(x))]
            continue
        picks = rng.choice(len(x), size=trials, p=nearest / total)
        candidates = x[picks]  # (t, D)
        to = np.maximum(sq[:, None] - 2 * x @ candidates.T + (candidates * candidates).sum(axis=1)[None], 0.0)
        after = np.minimum(nearest[:, None], to)  # (N, t)
        best = int(np.argmin(after.sum(axis=0)))
        seeds[j], nearest = candidates[best], after[:, best]
    return seeds


def kmeans_centres(
    features: np.ndarray, k: int, rng: np.random.Generator, *, n_init: int = 3, iterations: int = 25
) -> tuple[np.ndarray, float]:
    """faiss k-means on (M, D), each of ``n_init`` runs from k-means++ seeds (drawn from a sample
    of at most ``SEED_SAMPLE_PER_CENTRE`` points per centre), the best kept: the centres (k, D)
    float32 and their objective (the sum of squared distances of the training points)."""
    import faiss

    x = as_float32(features)
    best: tuple[np.ndarray, float] | None = None
    for _ in range(max(1, n_init)):
        sample = (
            x
            if len(x) <= SEED_SAMPLE_PER_CENTRE * k
            else x[np.sort(rng.choice(len(x), SEED_SAMPLE_PER_CENTRE * k, replace=False))]
        )
        km = faiss.Kmeans(
            x.shape[1], k, niter=iterations, seed=int(rng.integers(2**31 - 1)),
            max_points_per_centroid=MAX_POINTS_PER_CENTRE, min_points_per_centroid=1, verbose=False,
        )  # fmt: skip
        km.train(x, init_centroids=kmeans_pp(sample, k, rng))
        history = km.obj
        objective = float(history[-1]) if history is not None and len(history) else float("inf")
        if best is None or objective < best[1]:
            best = (np.asarray(km.centroids, np.float32).copy(), objective)
    assert best is not None
    return best


def kmeans_labels(features: np.ndarray, k: int, rng: np.random.Generator, *, n_init: int = 1) -> np.ndarray:
    """(N,) int64: the nearest of ``k`` faiss k-means centres (:func:`kmeans_centres`) to each row
    of ``features`` (N, D)."""
    import faiss

    x = as_float32(features)
    centres, _ = kmeans_centres(x, k, rng, n_init=n_init)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(centres)
    return index.search(x, 1)[1][:, 0].astype(np.int64)


def nearest_one_to_one(centres: np.ndarray, points: np.ndarray, *, neighbours: int = 16) -> np.ndarray:
    """(k,) distinct point positions, one per centre (k, D), minimising the total squared distance
    over each centre's ``neighbours`` nearest points (grown x4 until a full matching exists)."""
    import faiss
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    k, m = len(centres), len(points)
    x = as_float32(points)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    n = min(neighbours, m)
    while True:
        distances, idx = index.search(np.ascontiguousarray(centres, np.float32), n)
        columns, inverse = np.unique(idx, return_inverse=True)
        # + 1: an exact zero distance would be dropped as "no edge"; every full matching has k
        # edges, so the constant does not change which one is cheapest
        weights = distances.astype(np.float64).ravel() + 1.0
        graph = csr_matrix((weights, (np.repeat(np.arange(k), n), inverse.ravel())), shape=(k, len(columns)))
        try:
            rows, cols = min_weight_full_bipartite_matching(graph)
        except ValueError:  # no full matching among these neighbours
            rows = np.empty(0, np.int64)
        if len(rows) < k:  # fewer neighbours than centres (scipy then matches every column)
            if n >= m:
                raise ValueError(f"cannot match {k} centres to {m} points one to one")
            n = min(n * 4, m)
            continue
        out = np.empty(k, np.int64)
        out[rows] = columns[cols]
        return out


def compact_selection_faiss(
    features: np.ndarray, budget: int, rng: np.random.Generator, n_init: int = 3
) -> np.ndarray:
    """``scores.compact_selection`` with faiss: ``budget`` unique positions into ``features``."""
    if budget >= len(features):
        return np.arange(len(features))
    x = as_float32(features)
    centres, _ = kmeans_centres(x, budget, rng, n_init=n_init)
    return nearest_one_to_one(centres, x)


__all__ = [
    "MAX_POINTS_PER_CENTRE",
    "available",
    "compact_selection_faiss",
    "kmeans_centres",
    "kmeans_labels",
    "nearest_one_to_one",
]
