"""The engine that runs a frozen backbone forward for the feature cache.

On a CPU, OpenVINO runs EfficientNet-Lite0 at 112 px several times faster than PyTorch's eager
kernels (its depthwise convolutions, fused layers and preallocated memory: see
``docs/benchmarks.md``) and gives the same features within float16 rounding, which is what the
cache stores; so the cache key does not depend on the engine, and a cache built by either is
used by both. On CUDA, and wherever OpenVINO is missing or cannot convert a backbone, PyTorch
runs it (with AMP and channels-last on CUDA).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from unisal.errors import RunError
from unisal.events import message

# Converting and compiling a backbone for OpenVINO takes a few seconds (3.5 s for Lite0 on 2
# cores), which it wins back after about 600 views: below this many, ``auto`` keeps PyTorch.
OPENVINO_MIN_VIEWS = 1000

Forward = Callable[[torch.Tensor], torch.Tensor]  # normalised (B, 3, S, S) float32 -> (B, F) float32


def torch_forward(backbone: torch.nn.Module, device: torch.device) -> Forward:
    """PyTorch eager inference, with AMP and channels-last on CUDA."""

    @torch.inference_mode()
    def forward(x: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            return backbone(x).float()

    return forward


def openvino_forward(backbone: torch.nn.Module, image_size: int, threads: int) -> Forward:
    """OpenVINO inference in float32 on the CPU, any batch size, ``threads`` threads.

    Raises:
        ImportError: OpenVINO is not installed.
        Exception: whatever OpenVINO raised where it could not convert or compile the backbone.
    """
    import openvino as ov

    # Through ONNX, not openvino.convert_model: the runtime reads the model and sends nothing
    # anywhere, where the conversion API would send usage telemetry unless the user opted out.
    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="unisal-onnx-") as folder:
        path = Path(folder) / "backbone.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter traces the model: torch.jit's deprecation notes
            torch.onnx.export(
                backbone,
                (torch.zeros(2, 3, image_size, image_size),),
                str(path),
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "batch"}},
                dynamo=False,
            )
        # f32 precision: on CPUs with bf16 units OpenVINO would otherwise round activations to bf16.
        compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads)},
        )
    request = compiled.create_infer_request()

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)})
        return torch.from_numpy(np.array(next(iter(out.values())), np.float32))

    return forward


def backbone_forward(
    backbone: torch.nn.Module,
    *,
    engine: str,
    device: torch.device,
    image_size: int,
    n_views: int,
) -> tuple[Forward, str]:
    """The forward function of ``backbone`` (in eval mode) for the feature cache, and the engine used.

    Args:
        engine: ``auto`` (OpenVINO on a CPU for at least ``OPENVINO_MIN_VIEWS`` views, where it
            converts the backbone; else PyTorch), ``torch`` or ``openvino`` (an error where it
            cannot run).
        device: where the features are computed; OpenVINO runs on the CPU only.
        image_size: side of the square inputs.
        n_views: how many views (images x views per image) there are to compute.
    """
    if engine == "torch" or (engine == "auto" and (device.type != "cpu" or n_views < OPENVINO_MIN_VIEWS)):
        return torch_forward(backbone, device), "torch"
    if device.type != "cpu":
        raise RunError(f"the openvino feature engine runs on the CPU, not on {device}; use --device cpu")
    try:
        return openvino_forward(backbone, image_size, torch.get_num_threads()), "openvino"
    except Exception as exc:  # any failure to convert or compile: PyTorch still runs the backbone
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        if engine == "openvino":
            raise RunError(
                f"OpenVINO cannot run this backbone ({reason}); use --feature-engine torch"
            ) from exc
        message(f"feature extraction runs in PyTorch: OpenVINO cannot run this backbone ({reason})")
        return torch_forward(backbone, device), "torch"
