"""Batched weak augmentations and normalisation, on whatever device the batch lives.

A weak view is a random resized crop, horizontal/vertical flips and a 90-degree rotation.
All of it is one affine warp per image, so a whole batch is a single ``grid_sample`` call
and the randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return images_u8.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> standardised with per-channel ``mean``/``std``."""
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def weak_view_params(
    batch: int,
    generator: torch.Generator,
    scale_min: float = 0.6,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Affine matrices (B, 2, 3) for crop + flips + rot90, in ``F.affine_grid`` convention.

    The matrix maps output coordinates to input coordinates in [-1, 1]; a crop of area fraction
    ``a`` and aspect ratio ``r`` scales by (sqrt(a r), sqrt(a / r)), clipped to the image.
    """
    u = torch.rand(batch, 7, generator=generator)
    area = scale_min + (1.0 - scale_min) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(log_r)
    sx = torch.sqrt(area * r).clamp(max=1.0)
    sy = torch.sqrt(area / r).clamp(max=1.0)
    tx = (1.0 - sx) * (2.0 * u[:, 2] - 1.0)
    ty = (1.0 - sy) * (2.0 * u[:, 3] - 1.0)
    flip_x = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    flip_y = torch.where(u[:, 5] < 0.5, -1.0, 1.0)
    quarter_turns = torch.floor(u[:, 6] * 4.0).clamp(max=3.0)
    angle = quarter_turns * (math.pi / 2)
    cos, sin = torch.cos(angle).round(), torch.sin(angle).round()  # exact for multiples of 90
    # theta = [R @ diag(flip_x * sx, flip_y * sy) | t]
    a = flip_x * sx
    d = flip_y * sy
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = cos * a
    theta[:, 0, 1] = -sin * d
    theta[:, 1, 0] = sin * a
    theta[:, 1, 1] = cos * d
    # The crop centre turns with the crop, so a rotated crop still lies inside the image.
    theta[:, 0, 2] = cos * tx - sin * ty
    theta[:, 1, 2] = sin * tx + cos * ty
    return theta


def apply_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp (B, 3, H, W) images with (B, 2, 3) matrices; output has the same size."""
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def weak_view(images: torch.Tensor, generator: torch.Generator, scale_min: float = 0.6) -> torch.Tensor:
    """One random weak augmentation of each image in (B, 3, H, W)."""
    return apply_affine(images, weak_view_params(images.shape[0], generator, scale_min))
