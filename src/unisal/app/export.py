"""Use a project's latest model: predict new images, or export it as one ``torch.export`` file.

The exported model takes RGB images as a float tensor (B, 3, H, W) in [0, 1], takes their
centre square resized to the project's image size, and returns class probabilities (B, C),
averaged over the networks, through the same code as the project's rounds predict
(:class:`ExportedClassifier`: every ``features.views`` / ``features.crops`` /
``features.predict_views`` setting). The class names and settings ride along in the file
(``unisal.json``)::

    import json, torch
    extra = {"unisal.json": ""}
    model = torch.export.load("model.pt2", extra_files=extra).module()
    info = json.loads(extra["unisal.json"])          # class_names, image_size, ...
    probs = model(images)                             # images: (B, 3, H, W) float in [0, 1]
    labels = [info["class_names"][k] for k in probs.argmax(1)]
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unisal.app.project import open_project, protected_outputs, read_images
from unisal.app.rounds import ProjectSettings, run_config
from unisal.app.store import ProjectError
from unisal.config import RunConfig
from unisal.data.catalogue import DataError
from unisal.data.prepare import PreparedData, decode_catalogue, prepared_catalogue
from unisal.data.splits import TRAIN
from unisal.events import message
from unisal.io import atomic_path, check_output_file, write_csv_atomic
from unisal.learners import Learner, create_learner
from unisal.models.features import ViewSpec, prediction_views, shared_crops, view_features
from unisal.pipeline import pixels_needed
from unisal.train.evaluate import mean_over_views


def latest_model(folder: str | Path) -> tuple[RunConfig, list[str], dict[str, Any], int]:
    """The settings, class names, checkpoint and round of the project's latest trained round."""
    store = open_project(folder)
    done = [r for r in store.rounds() if r["status"] == "done" and r["checkpoint"]]
    if not done:
        raise ProjectError(
            f"{folder} has no trained round yet: label some images and run `unisal project round`"
        )
    record = done[-1]
    settings = ProjectSettings(**record["settings"])
    cfg = run_config(settings, store.settings()["image_root"])
    path = Path(folder) / record["checkpoint"]
    again = f"run `unisal project round {folder}` again to train a new one"
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProjectError(f"the model of round {record['id']} ({path}) is missing; {again}") from None
    except OSError as exc:
        raise ProjectError(
            f"cannot read the model of round {record['id']} ({path}): {exc.strerror or exc}"
        ) from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
        state = None  # torch.load's errors on a truncated, empty or foreign file
    if not isinstance(state, dict) or not isinstance(state.get("class_names"), list):
        raise ProjectError(
            f"cannot read the model of round {record['id']} ({path}): the file is damaged or not a "
            f"checkpoint; {again}"
        )
    return cfg, list(state["class_names"]), state, int(record["id"])


def _prepared(images: str | Path, cfg: RunConfig) -> PreparedData:
    catalogue = read_images(images, "unlabelled")
    try:
        return prepared_catalogue(
            catalogue, cfg.data, np.full(len(catalogue), TRAIN), pixels_needed=pixels_needed(cfg)
        )
    except DataError as exc:
        raise ProjectError(str(exc)) from None


def model_learner(
    cfg: RunConfig, class_names: list[str], state: dict[str, Any], data: PreparedData
) -> Learner:
    from unisal.device import resolve_device

    learner = create_learner(cfg, len(class_names), resolve_device(cfg.device))
    learner.prepare(data)
    learner.load_state_dict(state)
    return learner


def predict_folder(
    folder: str | Path,
    images: str | Path,
    out: str | Path,
) -> int:
    """Write ``out`` CSV: path, predicted class, confidence, whether the networks agree, and the
    probability of every class. Returns the number of images. ``out`` may not replace the
    project's own files nor lie in its image folder or in ``images``."""
    protected = protected_outputs(folder, open_project(folder))
    protected.setdefault(Path(images), "the --images folder")
    check_output_file(out, protected=protected)  # before loading a model or predicting
    cfg, class_names, state, round_id = latest_model(folder)
    # every image gets a prediction, or the command names those it cannot read
    cfg.data.skip_bad_images = False
    data = _prepared(images, cfg)
    try:
        learner = model_learner(cfg, class_names, state, data)
    except DataError as exc:  # found while their pixels were streamed
        raise ProjectError(str(exc)) from None
    preds = learner.predict(np.arange(len(data.catalogue)))
    probs = preds.probs()
    mean = probs.mean(axis=0)
    agree = np.all(probs.argmax(axis=2) == probs[0].argmax(axis=1)[None], axis=0)
    cat = data.catalogue
    rows = (
        [
            cat.relative(i),
            class_names[int(mean[i].argmax())],
            f"{mean[i].max():.4f}",
            str(bool(agree[i])).lower(),
            *(f"{p:.4f}" for p in mean[i]),
        ]  # fmt: skip
        for i in range(len(cat))
    )
    write_csv_atomic(
        out, ["path", "label", "confidence", "networks_agree", *(f"p_{c}" for c in class_names)], rows
    )
    message(f"round {round_id}'s model: {len(cat)} images predicted")
    return len(cat)


def centre_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size): the centre square, resized (bicubic, antialiased), as
    the decoded-image cache does with PIL (:func:`unisal.data.images.resize_square`; the two
    resamplers differ by a grey level or two, the crop is the same)."""
    h, w = images.shape[2], images.shape[3]
    side = torch.sym_min(h, w)
    # index_select, not slicing: slices of symbolic sizes make torch.export specialise the shape
    rows = torch.arange(side, device=images.device) + (h - side) // 2
    cols = torch.arange(side, device=images.device) + (w - side) // 2
    square = images.index_select(2, rows).index_select(3, cols)
    resized = F.interpolate(square, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return resized.clamp(0.0, 1.0)


class ExportedClassifier(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> class probabilities (B, C), as the project predicts.

    The same code as the rounds' predictions from the resized image on: for the frozen learner,
    every cached view's backbone features (:func:`~unisal.models.features.view_features`, fixed
    views then the shared crops), rounded to float16 as the cache stores them, combined as
    ``features.predict_views`` says (:func:`~unisal.models.features.prediction_views`); then each
    network's logits averaged over those inputs (:func:`~unisal.train.evaluate.mean_over_views`),
    its softmax, and the mean over the networks.
    """

    mean: torch.Tensor
    std: torch.Tensor
    crops: torch.Tensor

    def __init__(self, learner: Learner, cfg: RunConfig):
        super().__init__()
        from unisal.models.backbones import create_backbone, normalisation

        self.size = cfg.data.image_size
        self.frozen = cfg.learner.name == "frozen"
        self.heads = nn.ModuleList(learner.nets)
        self.spec = ViewSpec.from_config(cfg.features)
        self.predict_views = cfg.features.predict_views
        if self.frozen:
            self.backbone = create_backbone(cfg.model.backbone, cfg.model.pretrained, cfg.model.weights)
            mean, std = normalisation(self.backbone)
        else:
            self.backbone = nn.Identity()
            first = learner.nets[0]
            mean, std = first.mean, first.std  # type: ignore[assignment]
        self.norm = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.register_buffer("crops", shared_crops(self.spec) if self.frozen else torch.zeros(0, 2, 3))
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = centre_square(images, self.size)
        if self.frozen:
            crops = self.crops.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
            features = view_features(x, self.spec, crops, self.backbone, *self.norm)
            inputs = prediction_views(features.to(torch.float16).float(), self.predict_views)
        else:
            inputs = [(x - self.mean) / self.std]
        probs = [mean_over_views([head(v).logits for v in inputs]).softmax(1) for head in self.heads]
        return torch.stack(probs).mean(0)


def export_model(folder: str | Path, out: str | Path) -> dict[str, Any]:
    """Export the latest model with ``torch.export`` into one file at ``out`` (any batch size and
    image size: the images are resized inside); returns its embedded info."""
    # before loading the model and tracing it
    check_output_file(out, protected=protected_outputs(folder, open_project(folder)))
    cfg, class_names, state, round_id = latest_model(folder)
    cfg.device = "cpu"
    store = open_project(folder)
    first = store.images()[0]
    image_root = Path(store.settings()["image_root"])
    data = _prepared_single(image_root / first["path"], cfg)
    learner = model_learner(cfg, class_names, state, data)
    module = ExportedClassifier(learner, cfg).eval()
    example = torch.rand(2, 3, cfg.data.image_size, cfg.data.image_size)
    dynamic = {
        "images": {
            0: torch.export.Dim("batch", min=1, max=65536),
            2: torch.export.Dim("height", min=8, max=8192),
            3: torch.export.Dim("width", min=8, max=8192),
        }
    }
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
    info = {
        "class_names": class_names,
        "image_size": cfg.data.image_size,
        "input": "float (B, 3, H, W) RGB in [0, 1]; resized to image_size inside",
        "output": "class probabilities (B, C), averaged over the networks",
        "round": round_id,
        "learner": cfg.learner.name,
        "backbone": cfg.model.backbone,
        "views": ViewSpec.from_config(cfg.features).describe()
        if cfg.learner.name == "frozen"
        else "identity",
        "score_views": cfg.features.predict_views
        if cfg.learner.name == "frozen"
        else "first",  # before issue 16
        "predict_views": cfg.features.predict_views if cfg.learner.name == "frozen" else "first",
    }
    with atomic_path(out) as tmp:
        torch.export.save(program, str(tmp), extra_files={"unisal.json": json.dumps(info)})
    return info


def _prepared_single(path: Path, cfg: RunConfig) -> PreparedData:
    """A one-image data set: enough for the learner to know its feature width."""
    from unisal.data.catalogue import Catalogue
    from unisal.data.items import FileItems

    catalogue = Catalogue(FileItems((str(path),)), np.array([-1]), np.array([0]), [], str(path.parent))
    store, _, _ = decode_catalogue(catalogue, cfg.data, pixels_needed=pixels_needed(cfg))
    return PreparedData(catalogue, store, np.array([TRAIN]), [])
