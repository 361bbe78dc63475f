"""Pure scoring and selection functions behind the query strategies.

Shapes: N pool items, L labelled items, C classes, D feature dimensions, K networks, S samples.
Every function is deterministic given its inputs and, where it draws, its generator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors


# ---- uncertainty
def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy (nats): probs (N, C) -> (N,)."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability: probs (N, C) -> (N,); small = uncertain."""
    top2 = np.sort(np.asarray(probs, np.float64), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """One minus the top probability: probs (N, C) -> (N,); large = uncertain."""
    return 1.0 - np.asarray(probs, np.float64).max(axis=1)


def bald(sample_probs: np.ndarray) -> np.ndarray:
    """BALD mutual information, H(mean p) - mean H(p): sample_probs (S, N, C) -> (N,) >= 0."""
    sample_probs = np.asarray(sample_probs, np.float64)
    mean_entropy_of_samples = np.mean([entropy(p) for p in sample_probs], axis=0)
    return np.maximum(entropy(sample_probs.mean(axis=0)) - mean_entropy_of_samples, 0.0)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores (N,) -> (k,); ties go to the lower position."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


# ---- distances and clustering
def pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (A, D) x (B, D) -> (A, B), float64, clipped at 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def min_sq_distance_to(points: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Squared distance of each point (N, D) to its nearest centre (M, D) -> (N,); inf if M = 0."""
    if len(centres) == 0:
        return np.full(len(points), np.inf)
    return np.concatenate(
        [pairwise_sq_distances(points[s : s + chunk], centres).min(1) for s in range(0, len(points), chunk)]
    )


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows (N, D) scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=4)
def _projection(width: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((width, dim)).astype(np.float32) / np.float32(
        np.sqrt(dim)
    )


def random_projection(x: np.ndarray, dim: int, *, seed: int = 0) -> np.ndarray:
    """Rows (N, F) projected to (N, ``dim``) float32 by a seeded Gaussian matrix (the same for every
    call with this F, ``dim`` and ``seed``: batches and the labelled set land in one space), then
    L2-normalised. Distances between unit rows are kept within a few percent for dim ~ 100
    (Johnson-Lindenstrauss), at dim / F of the memory."""
    x = np.asarray(x, np.float32)
    return l2_normalise(x @ _projection(x.shape[1], dim, seed))


def kmeans_fit(
    features: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 3, dtype: type = np.float64
) -> KMeans:
    """scikit-learn k-means on (N, D) with a seed drawn from ``rng``."""
    seed = int(rng.integers(2**31 - 1))
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(np.asarray(features, dtype))


FAISS_FROM = 20_000  # ``engine="auto"``: faiss from this many points (scikit-learn below: as before)


def compact_selection(
    features: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    n_init: int = 3,
    dtype: type = np.float64,
    *,
    engine: str = "auto",
) -> np.ndarray:
    """k-means with k = ``budget`` on features (M, D); the point nearest each centre.

    Points are matched to centres one-to-one by minimum total distance (Hungarian), which is
    each centre's own nearest point whenever those are distinct, and never picks a point twice.
    ``engine``: ``sklearn``, ``faiss`` (``unisal.query.faiss_kmeans``: float32, a sparse
    matching over each centre's nearest points; for pools of 10^5-10^6), or ``auto`` (faiss
    from ``FAISS_FROM`` points where it is installed, so smaller pools choose as before).

    Returns:
        ``budget`` unique row positions into ``features`` (all rows when M <= budget).
    """
    from unisal.query import faiss_kmeans

    m = len(features)
    if budget >= m:
        return np.arange(m)
    if engine == "faiss" or (engine == "auto" and m >= FAISS_FROM and faiss_kmeans.available()):
        return faiss_kmeans.compact_selection_faiss(features, budget, rng, n_init)
    km = kmeans_fit(features, budget, rng, n_init, dtype)
    distances = pairwise_sq_distances(km.cluster_centers_, features)
    _, columns = linear_sum_assignment(distances)  # rows are centres 0..budget-1 in order
    return np.asarray(columns)


def k_center_greedy(
    pool: np.ndarray, labelled: np.ndarray, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Core-set selection (Sener & Savarese 2018): repeatedly take the pool point farthest from
    everything labelled or chosen so far.

    Args:
        pool: (N, D) features of the candidates; labelled: (L, D), possibly empty. From
            ``FAISS_FROM`` points the distances to each pick are taken in float32 from the
            points' precomputed squared norms (one matrix-vector product per pick, no float64
            copy of the pool), below it in float64 as before.

    Returns:
        positions (budget,) in the order chosen, and each pool point's initial distance to the
        labelled set (N,) (its score; inf when L = 0).
    """
    nearest = min_sq_distance_to(pool, labelled)
    initial = np.sqrt(nearest)
    large = len(pool) >= FAISS_FROM
    if large:
        from unisal.query.faiss_kmeans import as_float32

        x = as_float32(pool)
        sq = np.einsum("ij,ij->i", x, x)
    chosen: list[int] = []
    for _ in range(budget):
        i = int(rng.integers(len(pool))) if np.all(np.isinf(nearest)) else int(np.argmax(nearest))
        chosen.append(i)
        if large:
            to = sq - 2.0 * (x @ x[i]) + sq[i]
            np.minimum(nearest, np.maximum(to, 0.0), out=nearest)
        else:
            nearest = np.minimum(nearest, pairwise_sq_distances(pool, pool[i : i + 1])[:, 0])
        nearest[chosen] = -1.0  # never again
    return np.asarray(chosen, np.int64), initial


def gradient_factors(logits: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two factors of BADGE's gradient embedding g = a outer h: a = softmax(z) - onehot(argmax
    z) (N, C) float64 and the classifier's input h (N, H) float64, from logits (N, C) and hidden
    (N, H) (float32 from ``FAISS_FROM`` items). Distances between gradient embeddings follow from
    the factors alone (:func:`kmeans_pp_seeds_outer`), so the (N, C * H) embedding is never built."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(p)), p.argmax(1)] -= 1.0
    # from FAISS_FROM items h stays float32 as given (no float64 copy: 1 GB at 10^6 x 128)
    return p, np.asarray(hidden, np.float32 if len(p) >= FAISS_FROM else np.float64)


def gradient_embeddings(logits: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """BADGE gradient embeddings: the cross-entropy gradient with respect to the last layer's
    weights, at the predicted label: (softmax(z) - onehot(argmax z)) outer h.

    Args:
        logits: (N, C); hidden: (N, H), the classifier's input.

    Returns:
        (N, C * H) float32.
    """
    a, h = gradient_factors(logits, hidden)
    return (a[:, :, None] * h[:, None, :]).reshape(len(a), -1).astype(np.float32)


def _kmeans_pp(
    norms_sq: np.ndarray, sq_distance_to: Callable[[int], np.ndarray], k: int, rng: np.random.Generator
) -> np.ndarray:
    """BADGE's k-means++ over N points given their squared norms (N,) and the squared distances
    of every point to point i (``sq_distance_to(i)`` -> (N,)): (k,) unique positions."""
    first = int(np.argmax(norms_sq))
    chosen = [first]
    nearest = sq_distance_to(first)
    for _ in range(k - 1):
        weights = nearest.copy()
        weights[chosen] = 0.0
        total = weights.sum()
        if total <= 0:  # every remaining point coincides with a seed: take them in order
            rest = np.setdiff1d(np.arange(len(norms_sq)), chosen)
            i = int(rest[rng.integers(len(rest))])
        else:
            i = int(rng.choice(len(norms_sq), p=weights / total))
        chosen.append(i)
        nearest = np.minimum(nearest, sq_distance_to(i))
    return np.asarray(chosen, np.int64)


def kmeans_pp_seeds(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on (N, D) as in BADGE: the largest-norm point first, then each next point
    drawn with probability proportional to its squared distance to the nearest seed.

    Returns:
        (k,) unique positions (k <= N).
    """
    x = np.asarray(x, np.float64)
    sq = (x * x).sum(1)
    return _kmeans_pp(sq, lambda i: np.maximum(sq - 2.0 * (x @ x[i]) + sq[i], 0.0), k, rng)


def kmeans_pp_seeds_outer(a: np.ndarray, h: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`kmeans_pp_seeds` on the rows of a outer h ((N, C) and (N, H) -> N points of C * H
    dimensions) without building them: <a_i h_i, a_j h_j> = (a_i . a_j)(h_i . h_j), so memory is
    O(N (C + H)) (BADGE at 10^6 items)."""
    a = np.asarray(a, np.float64)
    h = np.asarray(h, np.float32 if len(a) >= FAISS_FROM else np.float64)  # as gradient_factors
    sq = (a * a).sum(1) * (h * h).sum(1, dtype=np.float64)
    return _kmeans_pp(sq, lambda i: np.maximum(sq - 2.0 * (a @ a[i]) * (h @ h[i]) + sq[i], 0.0), k, rng)


def cluster_labels(features: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(N,) the k-means cluster (one run) of each row of ``features`` (N, D): scikit-learn's
    below ``FAISS_FROM`` rows (as before), faiss's (:mod:`unisal.query.faiss_kmeans`) above."""
    from unisal.query import faiss_kmeans

    if len(features) >= FAISS_FROM and faiss_kmeans.available():
        return faiss_kmeans.kmeans_labels(features, k, rng)
    return np.asarray(kmeans_fit(features, k, rng, n_init=1, dtype=np.float32).labels_)


def typicality(features: np.ndarray, k: int = 20) -> np.ndarray:
    """TypiClust typicality (Hacohen et al. 2022): inverse mean distance to the k nearest
    neighbours within ``features`` (M, D) -> (M,); a single point gets 0. Memory O(M k)."""
    m = len(features)
    if m < 2:
        return np.zeros(m)
    k = min(k, m - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return 1.0 / (distances[:, 1:].mean(axis=1) + 1e-8)  # column 0 is the point itself


def typiclust_select(
    pool: np.ndarray,
    labelled: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
    knn: int = 20,
) -> tuple[np.ndarray, list[int]]:
    """TypiClust: cluster pool and labelled features into ``L + budget`` clusters (at most
    ``max_clusters``), then repeatedly take the most typical pool point of the cluster with the
    fewest labelled (or chosen) members, breaking ties by size.

    Args:
        pool: (N, D); labelled: (L, D).

    Returns:
        positions (budget,) into ``pool``, and the cluster of each.
    """
    everything = np.concatenate([pool, labelled]) if len(labelled) else np.asarray(pool)
    k = max(1, min(len(labelled) + budget, max_clusters, len(everything)))
    assignment = cluster_labels(everything, k, rng)
    pool_cluster, labelled_cluster = assignment[: len(pool)], assignment[len(pool) :]
    sizes = np.bincount(assignment, minlength=k)
    covered = np.bincount(labelled_cluster, minlength=k).astype(np.int64)
    by_cluster = np.argsort(pool_cluster, kind="stable")  # ascending positions within a cluster
    bounds = np.searchsorted(pool_cluster[by_cluster], np.arange(k + 1))
    available = {c: by_cluster[bounds[c] : bounds[c + 1]] for c in range(k)}
    typical: dict[int, np.ndarray] = {}
    chosen: list[int] = []
    clusters: list[int] = []
    for _ in range(budget):
        usable = [c for c in range(k) if len(available[c]) and sizes[c] >= min_cluster_size]
        if not usable:  # only small clusters are left: allow them
            usable = [c for c in range(k) if len(available[c])]
        c = min(usable, key=lambda c: (covered[c], -sizes[c], c))
        if c not in typical:
            members = np.flatnonzero(assignment == c)
            typical[c] = typicality(everything[members], knn)[np.searchsorted(members, available[c])]
        best = int(np.argmax(typical[c]))
        chosen.append(int(available[c][best]))
        clusters.append(c)
        available[c] = np.delete(available[c], best)
        typical[c] = np.delete(typical[c], best)
        covered[c] += 1
    return np.asarray(chosen, np.int64), clusters


def disagreement_candidates(pred_a: np.ndarray, pred_b: np.ndarray) -> np.ndarray:
    """Positions (M,) where two networks' predicted classes (N,) differ, ascending."""
    return np.flatnonzero(np.asarray(pred_a) != np.asarray(pred_b))


def mean_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of the networks' averaged probabilities: probs (K, N, C) -> (N,)."""
    return entropy(np.asarray(probs).mean(axis=0))
