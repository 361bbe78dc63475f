"""Batch sampling and the learning-rate schedule used by ``fit``."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.train.fit import BalancedSampler, IndexSampler, labelled_sampler, lr_at

# absolute catalogue indices, deliberately not 0..n-1
INDICES = np.array([3, 8, 15, 16, 23, 42, 57, 60, 71, 99, 104])


def test_index_sampler_yields_each_index_once_per_pass():
    sampler = IndexSampler(INDICES, np.random.default_rng(0))
    n = len(INDICES)
    # draw four passes in batches of 4, which straddle the pass boundaries
    stream = np.concatenate([sampler.next(4) for _ in range(n)])
    assert len(stream) == 4 * n
    for k in range(4):
        np.testing.assert_array_equal(np.sort(stream[k * n : (k + 1) * n]), INDICES)
    # successive passes are reshuffled rather than repeated
    assert any(not np.array_equal(stream[:n], stream[k * n : (k + 1) * n]) for k in range(1, 4))


def test_index_sampler_batch_larger_than_the_pool():
    sampler = IndexSampler(INDICES[:3], np.random.default_rng(1))
    batch = sampler.next(7)
    assert len(batch) == 7
    np.testing.assert_array_equal(np.sort(batch[:3]), INDICES[:3])
    np.testing.assert_array_equal(np.sort(batch[3:6]), INDICES[:3])
    assert batch[6] in INDICES[:3]


def test_index_sampler_is_seed_reproducible():
    def draw(seed: int) -> np.ndarray:
        sampler = IndexSampler(INDICES, np.random.default_rng(seed))
        return np.concatenate([sampler.next(5) for _ in range(6)])

    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (1, 0.1), (74, 0.1), (75, 0.01), (76, 0.01), (99, 0.01), (150, 0.01)],
)
def test_lr_at_decays_tenfold_at_three_quarters(step, expected):
    assert lr_at(step, total_steps=100, base_lr=0.1, decay_at=0.75) == pytest.approx(expected)


def test_lr_at_rounds_the_decay_step_down():
    # 10 steps x 0.75 = 7.5 -> the decay starts at step 7
    assert lr_at(6, total_steps=10, base_lr=0.03, decay_at=0.75) == pytest.approx(0.03)
    assert lr_at(7, total_steps=10, base_lr=0.03, decay_at=0.75) == pytest.approx(0.003)


# a skewed labelled set: class 0 has 1 image, class 1 has 3, class 2 has 7
SKEWED_LABELS = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2])


def test_balanced_sampler_draws_every_class_equally_often():
    sampler = BalancedSampler(INDICES, SKEWED_LABELS, np.random.default_rng(0))
    stream = np.concatenate([sampler.next(4) for _ in range(15)])  # 60 draws = 20 cycles of 3 classes
    label_of = dict(zip(INDICES.tolist(), SKEWED_LABELS.tolist(), strict=True))
    drawn = np.array([label_of[i] for i in stream.tolist()])
    assert np.bincount(drawn).tolist() == [20, 20, 20]
    # within a class, its images in passes: the 7 images of class 2 each appear once in its first 7 draws
    class2 = stream[drawn == 2]
    np.testing.assert_array_equal(np.sort(class2[:7]), INDICES[SKEWED_LABELS == 2])
    assert set(stream[drawn == 0].tolist()) == {3}  # the lone image of class 0 comes back every cycle


def test_balanced_sampler_is_seeded_and_uniform_is_the_old_sampler():
    def draw(how: str, seed: int) -> np.ndarray:
        sampler = labelled_sampler(INDICES, SKEWED_LABELS, how, np.random.default_rng(seed))
        return np.concatenate([sampler.next(5) for _ in range(6)])

    np.testing.assert_array_equal(draw("balanced", 3), draw("balanced", 3))
    assert not np.array_equal(draw("balanced", 3), draw("balanced", 4))
    old = IndexSampler(INDICES, np.random.default_rng(3))
    np.testing.assert_array_equal(draw("uniform", 3), np.concatenate([old.next(5) for _ in range(6)]))
