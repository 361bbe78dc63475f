"""Where tensors live: the device is chosen once, at the boundary, and passed in everywhere else."""

from __future__ import annotations

import torch

from unisal.errors import RunError


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when PyTorch sees a GPU, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise RunError(f"unknown device '{name}'; expected auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise RunError(f"unsupported device '{name}'; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return device
