"""Time the vectorised class-wise contrastive loss against a per-sample Python loop.

Both run forward + backward on CPU on the same random batch (about half the rows anchors,
spread over a few classes), after warm-up; the script prints the median of each and the
speed-up, and exits 1 when the speed-up is below ``--min-speedup`` or the two disagree.

    python benchmarks/bench_contrastive.py --batch 128 --dim 128 --min-speedup 500
"""

from __future__ import annotations

import os

# OpenMP workers spin while they wait; on a shared, busy CPU two spinning threads starve each
# other and a 2 ms loss takes 140 ms. Waiting passively times the loss, not the scheduler.
# Set before torch loads OpenMP; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402

from unisal.train.losses import classwise_contrastive_loss  # noqa: E402


def naive_contrastive(
    z1: torch.Tensor,
    z2: torch.Tensor,
    classes: torch.Tensor,
    anchors: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """The loss as the authors' reference code states it, one anchor and one negative at a time.

    One term per anchor i: pos_i = exp(cos(z1_i, z2_i) / T) over a single denominator that sums
    the negatives of both views, exp(cos(z1_i, z1_j) / T) + exp(cos(z2_i, z2_j) / T) for every
    anchor j != i of another class; the mean of -log(pos_i / (pos_i + neg_i)) over the anchors
    that have a negative. A deliberate duplicate of the test suite's reference (benchmarks do
    not import tests); it is the baseline the vectorised loss is measured against.
    """

    def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum() / (a.norm() * b.norm())

    is_anchor = anchors.tolist()
    cls = classes.tolist()
    terms = []
    for i in range(len(z1)):
        if not is_anchor[i]:
            continue
        negatives = [j for j in range(len(z1)) if j != i and is_anchor[j] and cls[j] != cls[i]]
        if not negatives:
            continue
        pos = torch.exp(cos(z1[i], z2[i]) / temperature)
        neg = 0.0
        for j in negatives:
            neg = neg + torch.exp(cos(z1[i], z1[j]) / temperature)
            neg = neg + torch.exp(cos(z2[i], z2[j]) / temperature)
        terms.append(-torch.log(pos / (pos + neg)))
    if not terms:
        return z1.sum() * 0.0
    return torch.stack(terms).mean()


def median_ms(step: Callable[[], float], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="rows B (labelled + unlabelled)")
    parser.add_argument("--dim", type=int, default=128, help="projection size D")
    parser.add_argument("--classes", type=int, default=8, help="number of (pseudo-)classes")
    parser.add_argument("--anchor-rate", type=float, default=0.5, help="fraction of rows that are anchors")
    parser.add_argument("--temperature", type=float, default=0.15)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs of the vectorised loss")
    parser.add_argument("--naive-repeats", type=int, default=3, help="timed runs of the loop")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-speedup", type=float, default=500.0, help="exit 1 below this")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    z1 = torch.randn(args.batch, args.dim, generator=g)
    z2 = z1 + 0.5 * torch.randn(args.batch, args.dim, generator=g)
    classes = torch.randint(args.classes, (args.batch,), generator=g)
    anchors = torch.rand(args.batch, generator=g) < args.anchor_rate

    def run(loss_fn: Callable[..., torch.Tensor]) -> Callable[[], float]:
        def step() -> float:
            a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
            loss = loss_fn(a, b, classes, anchors, args.temperature)
            loss.backward()
            return float(loss.detach())

        return step

    fast_value, naive_value = run(classwise_contrastive_loss)(), run(naive_contrastive)()
    fast_ms = median_ms(run(classwise_contrastive_loss), args.repeats, warmup=5)
    naive_ms = median_ms(run(naive_contrastive), args.naive_repeats, warmup=1)
    speedup = naive_ms / fast_ms

    print(
        f"B={args.batch} D={args.dim} classes={args.classes} anchors={int(anchors.sum())} "
        f"T={args.temperature} threads={torch.get_num_threads()} "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} torch={torch.__version__}"
    )
    print(f"loss: vectorised {fast_value:.6f}, naive {naive_value:.6f}")
    print(f"vectorised forward+backward: median {fast_ms:.3f} ms over {args.repeats} runs")
    print(f"naive forward+backward: median {naive_ms:.1f} ms over {args.naive_repeats} runs")
    print(f"speedup: {speedup:.0f}x (vectorised {fast_ms:.3f} ms, naive {naive_ms:.0f} ms)")

    if abs(fast_value - naive_value) > 1e-4 * max(1.0, abs(naive_value)):
        print("FAIL: the vectorised loss disagrees with the loop", file=sys.stderr)
        return 1
    if speedup < args.min_speedup:
        print(
            f"FAIL: speed-up {speedup:.0f}x is below --min-speedup {args.min_speedup:g}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
