"""Batched weak views: seeded affine parameters, exact dihedral symmetries, crops in bounds."""

from __future__ import annotations

import pytest
import torch

from unisal.data.views import apply_affine, normalise, to_float, weak_view, weak_view_params


def _image(batch: int = 1, height: int = 6, width: int = 6) -> torch.Tensor:
    """(B, 3, H, W) with all-distinct values in [0, 1), so any pixel permutation is visible."""
    n = batch * 3 * height * width
    return (torch.arange(n, dtype=torch.float32) / n).reshape(batch, 3, height, width)


def _theta(matrix: list[list[float]]) -> torch.Tensor:
    return torch.tensor(matrix, dtype=torch.float32)[None]


def test_params_are_reproducible_with_a_seeded_generator() -> None:
    first = weak_view_params(16, torch.Generator().manual_seed(7))
    second = weak_view_params(16, torch.Generator().manual_seed(7))
    other = weak_view_params(16, torch.Generator().manual_seed(8))
    assert first.shape == (16, 2, 3)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_weak_view_is_reproducible_and_keeps_the_shape() -> None:
    images = torch.rand(4, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    first = weak_view(images, torch.Generator().manual_seed(1))
    second = weak_view(images, torch.Generator().manual_seed(1))
    assert first.shape == images.shape
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ([[1, 0, 0], [0, 1, 0]], lambda x: x),
        ([[0, -1, 0], [1, 0, 0]], lambda x: torch.rot90(x, 1, dims=(2, 3))),
        ([[-1, 0, 0], [0, -1, 0]], lambda x: torch.rot90(x, 2, dims=(2, 3))),
        ([[0, 1, 0], [-1, 0, 0]], lambda x: torch.rot90(x, 3, dims=(2, 3))),
        ([[-1, 0, 0], [0, 1, 0]], lambda x: torch.flip(x, dims=(3,))),
        ([[1, 0, 0], [0, -1, 0]], lambda x: torch.flip(x, dims=(2,))),
    ],
    ids=["identity", "rot90", "rot180", "rot270", "flip-x", "flip-y"],
)
def test_apply_affine_reproduces_rot90_and_flips_exactly(matrix, expected) -> None:
    image = _image(height=5, width=5)
    out = apply_affine(image, _theta(matrix))
    assert out.shape == image.shape
    torch.testing.assert_close(out, expected(image), rtol=0, atol=1e-5)


def _dihedral(image: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of a square (B, 3, H, W) image."""
    rotations = [torch.rot90(image, k, dims=(2, 3)) for k in range(4)]
    return rotations + [torch.flip(r, dims=(3,)) for r in rotations]


def test_full_scale_square_views_are_exactly_dihedral() -> None:
    # scale_min=1 and ratio 1 leave no crop: only flips and quarter turns remain.
    batch = 64
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    theta = weak_view_params(batch, generator, scale_min=1.0, ratio=(1.0, 1.0))
    assert torch.equal(theta[:, :, 2], torch.zeros(batch, 2))
    linear = theta[:, :, :2]
    assert set(linear.unique().tolist()) <= {-1.0, 0.0, 1.0}
    identity = torch.eye(2).expand(batch, 2, 2)
    torch.testing.assert_close(linear @ linear.transpose(1, 2), identity, rtol=0, atol=0)

    # The same random numbers decide the flips and turns: u4, u5 < 0.5 flip, floor(4 u6) turns.
    u = torch.rand(batch, 7, generator=torch.Generator().set_state(state))
    images = _image(batch, 6, 6)
    out = apply_affine(images, theta)
    seen = set()
    for i in range(batch):
        image = images[i : i + 1]
        expected = torch.rot90(image, int(u[i, 6] * 4), dims=(2, 3))
        if u[i, 4] < 0.5:
            expected = torch.flip(expected, dims=(3,))
        if u[i, 5] < 0.5:
            expected = torch.flip(expected, dims=(2,))
        torch.testing.assert_close(out[i : i + 1], expected, rtol=0, atol=1e-5)
        matches = [
            k for k, d in enumerate(_dihedral(image)) if torch.allclose(out[i], d[0], rtol=0, atol=1e-5)
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))  # 64 draws reach all 8 symmetries


def test_views_of_a_non_square_batch_keep_its_shape() -> None:
    images = torch.rand(3, 3, 8, 12, generator=torch.Generator().manual_seed(2))
    theta = weak_view_params(3, torch.Generator().manual_seed(3))
    assert apply_affine(images, theta).shape == (3, 3, 8, 12)


def _input_box(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-extents and centre, in input coordinates, of the region each matrix samples."""
    half = theta[:, :, :2].abs().sum(dim=2)  # (B, 2): x and y half-widths
    return half, theta[:, :, 2]


def test_crop_area_and_unrotated_crops_stay_inside_the_image() -> None:
    theta = weak_view_params(4096, torch.Generator().manual_seed(0), scale_min=0.6)
    area = torch.linalg.det(theta[:, :, :2]).abs()
    assert area.min() >= 0.6 * 0.75 - 1e-6  # ratio clipping can shrink the area a little
    assert area.max() <= 1.0 + 1e-6
    assert area.min() < 0.7  # small crops are drawn
    half, centre = _input_box(theta)
    unrotated = theta[:, 0, 1] == 0
    assert unrotated.float().mean() > 0.4  # half of the draws have 0 or 2 quarter turns
    assert ((centre.abs() + half)[unrotated] <= 1.0 + 1e-6).all()


def test_rotated_crops_stay_inside_the_image() -> None:
    theta = weak_view_params(4096, torch.Generator().manual_seed(0), scale_min=0.6)
    half, centre = _input_box(theta)
    # For scale < 1: |t| + s <= 1 on both axes, whatever the flips and turns.
    assert (centre.abs() + half <= 1.0 + 1e-6).all()


def test_to_float_and_normalise_known_values() -> None:
    images_u8 = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    images = to_float(images_u8)
    assert images.shape == (1, 3, 1, 1)
    torch.testing.assert_close(images.flatten(), torch.tensor([0.0, 0.2, 1.0]))
    out = normalise(images, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 0.5))
    torch.testing.assert_close(out.flatten(), torch.tensor([-2.0, -0.6, 1.0]))
