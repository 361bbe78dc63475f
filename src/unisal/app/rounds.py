"""One round of a labelling project: train on the labels so far, measure, queue the next batch.

The round uses the project's learner and strategy (UniSAL with the frozen learner by default)
through the same interfaces as a simulation. Metrics come from the labelled hold-out when the
project has one, else from grouped k-fold cross-validation over the labels. A round that fails
is recorded as failed with its reason; the labels, the previous model and the previous queue
stay as they were (the new checkpoint and queue are written only at the end).

A round holds the project's round lock (an OS lock that dies with its process) from before its
checks to its end; a round left "running" by a killed process is recorded as failed by the
next one (or by ``project status``). Images changed since ``project init`` stop a round before
it starts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unisal.app.project import check_images, open_project
from unisal.app.schema import guard_message, stop_message  # noqa: F401  # re-exported
from unisal.app.store import ProjectError, ProjectStore
from unisal.config import PRESETS, RunConfig, check_values, setting
from unisal.data.catalogue import Catalogue, DataError
from unisal.data.items import open_items
from unisal.data.prepare import PreparedData, prepared_catalogue
from unisal.data.splits import TEST, TRAIN
from unisal.estimate import grouped_folds, pooled_estimate, wilson_interval
from unisal.io import save_torch_atomic, write_scores_atomic
from unisal.pipeline import (
    check_run_settings,
    cross_validate,
    fit_round,
    make_strategy,
    pixels_needed,
    select_capped,
    stop_predictions,
    unlabelled_for,
)
from unisal.seeds import round_seed
from unisal.settings import check_names, resolve_config


@dataclass
class ProjectSettings:
    """How a project's rounds train and choose (stored in the project database).

    ``config`` holds any further RunConfig values (nested, as in a YAML config file).
    """

    preset: str = setting("cpu", choices=tuple(PRESETS))
    strategy: str = setting("unisal", registry="strategy")
    budget: int = setting(20, ge=1)  # images queued per round
    params: dict[str, Any] = field(default_factory=dict)  # the strategy's hyper-parameters
    folds: int = setting(5, ge=1, le=20)  # cross-validation folds when there is no labelled hold-out
    seed: int = setting(0, ge=0, lt=2**32)
    tiles_per_slide: int = setting(0, ge=0)  # at most this many queued tiles of one slide (0: no cap)
    device: str = "auto"
    config: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ProjectSettings:
        """These settings, checked as a run's configuration is (ConfigError naming the setting)."""
        check_values(self, what="project setting")
        check_names(self, what="project setting")
        return self

    @classmethod
    def from_store(cls, store: ProjectStore) -> ProjectSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in store.settings().items() if k in known}).check()


def run_config(settings: ProjectSettings, image_root: str) -> RunConfig:
    values = {
        **settings.config,
        "query": {
            **settings.config.get("query", {}),
            "strategy": settings.strategy,
            "budget": settings.budget,
            "params": settings.params,
        },
        "seed": settings.seed,
        "device": settings.device,
    }
    values["data"] = {**settings.config.get("data", {}), "path": image_root}
    return resolve_config(settings.preset, values)


def project_catalogue(store: ProjectStore) -> tuple[Catalogue, np.ndarray, np.ndarray]:
    """The project's items as a catalogue (labels as they are now, -1 where none), each item's
    split (N,: ``train`` for the pool, ``test`` for the labelled hold-out) and image id (N,)."""
    root = Path(store.settings()["image_root"])
    rows = store.images()
    labels = store.labels()
    names = store.class_names()
    groups = {g: k for k, g in enumerate(dict.fromkeys(r["grp"] for r in rows))}
    catalogue = Catalogue(
        items=open_items([str(root / r["path"]) for r in rows]),
        labels=np.asarray(
            [names.index(labels[r["path"]][0]) if r["path"] in labels else -1 for r in rows], np.int64
        ),
        groups=np.asarray([groups[r["grp"]] for r in rows], np.int64),
        class_names=names,
        root=str(root),
    )
    split = np.asarray([TEST if r["split"] == "test" else TRAIN for r in rows])
    return catalogue, split, np.asarray([r["id"] for r in rows], np.int64)


def project_data(store: ProjectStore, cfg: RunConfig) -> tuple[PreparedData, np.ndarray]:
    """The project's items decoded (``unisal.data.prepare``, as a run's), and each one's image id."""
    catalogue, split, ids = project_catalogue(store)
    try:
        return prepared_catalogue(catalogue, cfg.data, split, pixels_needed=pixels_needed(cfg)), ids
    except DataError as exc:
        raise ProjectError(str(exc).replace("image(s) cannot", "project image(s) cannot")) from None


def run_round(folder: str | Path) -> dict[str, Any]:
    """Train, measure and queue the next batch; returns the round's record. Progress and
    messages go out as events (:mod:`unisal.events`)."""
    from unisal.device import resolve_device

    store = open_project(folder)
    settings = ProjectSettings.from_store(store)
    cfg = run_config(settings, store.settings()["image_root"])
    check_run_settings(cfg)
    strategy = make_strategy(cfg)
    device = resolve_device(cfg.device)
    with store.round_lock():
        store.fail_running_rounds()  # with the lock held, none is really running
        check_images(store)
        round_id = store.start_round(asdict(settings))
        return _run_round(store, folder, round_id, settings, cfg, strategy, device)


def scores_file(folder: Path, round_id: int) -> Path:
    """Round ``round_id``'s strategy scores of the whole pool, by image id (unisal.io.read_scores)."""
    return folder / "rounds" / f"scores_{round_id}.npz"


def stop_file(folder: Path, round_id: int) -> Path:
    """Round ``round_id``'s predictions on the project's stop set: image id -> class name (JSON)."""
    return folder / "rounds" / f"stop_set_{round_id}.json"


def round_stopping(
    store: ProjectStore,
    folder: Path,
    round_id: int,
    learner: Any,
    data: PreparedData,
    image_ids: np.ndarray,
    cfg: RunConfig,
    seed: int,
) -> dict[str, Any]:
    """The stop signal of a project round (:mod:`unisal.stopping`, as in a simulation).

    The stop set is ``query.stop_set`` pool images drawn from the project's seed, the same every
    round; the round's predictions on it go to :func:`stop_file`, and its ``stop_kappa`` is their
    agreement with the latest earlier round that has predictions (None in the first);
    ``stopped_changing`` holds once the mean of the last ``query.stop_window`` kappas reaches
    ``query.stop_kappa``. Empty when the stop set is off.
    """
    from unisal.io import write_json_atomic
    from unisal.stopping import stop_set, stop_signal

    pool = np.flatnonzero(data.split == TRAIN)
    idx = stop_set(pool, cfg.query.stop_set, np.random.default_rng(round_seed(seed, 0, "stop_set")))
    if len(idx) == 0:
        return {}
    names, _ = stop_predictions(learner, data, idx)
    predicted = {str(int(image_ids[i])): name for i, name in zip(idx, names, strict=True)}
    earlier = [
        r
        for r in store.rounds()
        if r["id"] < round_id and r["status"] == "done" and stop_file(folder, r["id"]).is_file()
    ]
    previous = json.loads(stop_file(folder, earlier[-1]["id"]).read_text()) if earlier else {}
    common = sorted(set(previous) & set(predicted))  # the same images, unless the pool changed
    stop_file(folder, round_id).parent.mkdir(exist_ok=True)
    write_json_atomic(stop_file(folder, round_id), predicted)
    q = cfg.query
    kappa, stopped = stop_signal(
        [previous[i] for i in common] if common else None,
        [predicted[i] for i in common],
        [(r["metrics"] or {}).get("stop_kappa") for r in earlier],
        window=q.stop_window,
        threshold=q.stop_kappa,
    )
    return {
        "stop_kappa": None if kappa is None else round(kappa, 6),
        "stopped_changing": stopped,
    }


def failure_reason(error: BaseException) -> str:
    """What a failed round's record says: an interruption's own words (``stopped by SIGTERM``),
    else the error's type and message."""
    if isinstance(error, KeyboardInterrupt):
        return str(error) or "stopped by Ctrl-C (KeyboardInterrupt)"
    return f"{type(error).__name__}: {error}"


def _run_round(
    store: ProjectStore,
    folder: str | Path,
    round_id: int,
    settings: ProjectSettings,
    cfg: RunConfig,
    strategy: Any,
    device: Any,
) -> dict[str, Any]:
    """The work of round ``round_id`` (started, lock held); records its outcome."""
    from unisal.learners import create_learner

    start = time.perf_counter()
    try:
        data, image_ids = project_data(store, cfg)
        cat = data.catalogue
        labelled = np.flatnonzero((data.split == TRAIN) & (cat.labels >= 0))
        pool = np.flatnonzero((data.split == TRAIN) & (cat.labels < 0))
        test = np.flatnonzero((data.split == TEST) & (cat.labels >= 0))
        # A fully labelled pool still trains, measures and saves its model; it queues nothing.
        budget = min(settings.budget, len(pool))
        rng = np.random.default_rng(round_seed(settings.seed, round_id, "select"))
        metrics: dict[str, Any] = {"n_labels": int(len(labelled)), "n_test_labels": int(len(test))}
        n_classes_seen = len(np.unique(cat.labels[labelled]))
        learner = None
        items: list[dict[str, Any]] = []
        pool_scores: np.ndarray | None = None
        if n_classes_seen < 2 or len(labelled) < 4:  # cold start: no model to ask yet
            positions = np.sort(rng.choice(len(pool), size=budget, replace=False))
            if settings.tiles_per_slide:  # the cap holds from the first batch: random order, capped
                slide_of = [cat.items.holder(int(i)) for i in pool]
                taken: dict[str, int] = {}
                keep: list[int] = []
                for p in rng.permutation(len(pool)):
                    if taken.get(slide_of[p], 0) < settings.tiles_per_slide and len(keep) < budget:
                        keep.append(int(p))
                        taken[slide_of[p]] = taken.get(slide_of[p], 0) + 1
                positions = np.sort(np.asarray(keep, np.int64))
            items = [
                {
                    "image_id": int(image_ids[i]),
                    "reason": "cold start: random (label a few of each class first)",
                }
                for i in pool[positions]
            ]
        else:
            learner = create_learner(cfg, len(cat.class_names), device)
            learner.prepare(data)
            unlabelled = unlabelled_for(data, labelled)  # the pool
            if len(test):
                metrics |= (
                    fit_round(learner, data, labelled, unlabelled, seed=settings.seed, round_=round_id).guard
                    or {}
                )
                scores, _ = learner.evaluate(test, cat.labels[test])
                low, high = wilson_interval(round(scores["accuracy"] * len(test)), len(test))
                metrics |= {
                    "source": f"hold-out of {len(test)}",
                    **scores,
                    "accuracy_low": low,
                    "accuracy_high": high,
                }
            else:
                folds = grouped_folds(
                    cat.labels[labelled], cat.groups[labelled], settings.folds, settings.seed
                )
                fold_scores, _ = cross_validate(
                    learner, data, labelled, unlabelled, folds, seed=settings.seed, round_=round_id
                )
                if fold_scores:
                    for key in ("accuracy", "macro_f1"):
                        values = [s[key] for s in fold_scores]
                        metrics[key] = float(np.mean(values))
                        metrics[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                    # every labelled image predicted once by a model that did not see it
                    accuracy, low, high = pooled_estimate(fold_scores)
                    metrics |= {"accuracy": accuracy, "accuracy_low": low, "accuracy_high": high}
                    metrics["source"] = f"{len(folds)}-fold cross-validation"
                metrics |= (
                    fit_round(learner, data, labelled, unlabelled, seed=settings.seed, round_=round_id).guard
                    or {}
                )
        if learner is not None:
            metrics |= round_stopping(
                store, Path(folder), round_id, learner, data, image_ids, cfg, settings.seed
            )
        if learner is not None and budget > 0:
            owners = np.asarray([cat.items.holder(int(i)) for i in pool])  # a tile's slide
            selection = select_capped(
                strategy, learner, data, pool=pool, labelled=labelled, budget=budget, rng=rng,
                owners=owners, cap=settings.tiles_per_slide,
            )  # fmt: skip
            pool_scores = selection.scores
            probs = learner.predict(pool[selection.positions]).probs().mean(axis=0)
            items = [
                {
                    "image_id": int(image_ids[pool[p]]),
                    "reason": why,
                    "score": None if selection.scores is None else float(selection.scores[p]),
                    "guess": cat.class_names[int(probs[k].argmax())],
                    "guess_confidence": float(probs[k].max()),
                }
                for k, (p, why) in enumerate(zip(selection.positions, selection.reasons, strict=True))
            ]
        checkpoint = ""
        if pool_scores is not None:  # the whole pool's scores by image id, for maps
            write_scores_atomic(scores_file(Path(folder), round_id), image_ids[pool], pool_scores)
        if learner is not None:
            path = Path(folder) / "rounds" / f"round_{round_id}.pt"
            path.parent.mkdir(exist_ok=True)
            save_torch_atomic(
                {
                    "round": round_id,
                    "class_names": cat.class_names,
                    "config": asdict(settings),
                    **learner.state_dict(),
                },
                path,
            )
            checkpoint = str(path.relative_to(folder))
        metrics["queued"] = len(items)
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        store.replace_queue(round_id, items)
        store.finish_round(round_id, metrics=metrics, checkpoint=checkpoint)
    except BaseException as error:
        store.fail_round(round_id, failure_reason(error))
        raise
    return store.rounds()[-1]
