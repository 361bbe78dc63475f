"""Will a training step fit? A rough estimate, checked before a run writes anything.

The estimate is deliberately simple: a CNN keeps about ``ACTIVATIONS_PER_INPUT`` times its input
in activations and gradients during a training step (measured order of magnitude for
EfficientNet-Lite0 and ResNet-50 at 64-224 px), and the frozen learner's heads keep a few copies
of the feature vectors. It exists to turn a request that cannot fit (e.g. a batch of 100,000
images) into a clear message instead of the kernel killing the process.
"""

from __future__ import annotations

import torch

ACTIVATIONS_PER_INPUT = 48
SAFETY = 0.8  # use at most this share of the available memory


def available_bytes(device: torch.device) -> int | None:
    """Free memory of the device: MemAvailable on a Linux CPU, free GPU memory on CUDA."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def image_step_bytes(n_images: int, n_views: int, image_size: int) -> int:
    """A CNN training step on ``n_images`` x ``n_views`` images of ``image_size`` px."""
    return n_images * n_views * 3 * image_size * image_size * 4 * ACTIVATIONS_PER_INPUT


def feature_step_bytes(n_images: int, n_views: int, dim: int) -> int:
    """Heads trained on ``n_images`` x ``n_views`` feature vectors of ``dim`` float32 values."""
    return n_images * n_views * dim * 4 * 8


def describe(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.0f} MB"
