"""Where a slide map's model comes from: a labelling project's latest trained round, or a
simulation run's last checkpoint (``unisal heatmap --project DIR | --run DIR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unisal.app.export import latest_model, model_learner
from unisal.app.project import TILE_TABLE, open_project
from unisal.app.rounds import project_data, scores_file
from unisal.app.slidemap import ModelView, read_tissue, scores_by_index
from unisal.app.store import ProjectError
from unisal.errors import RunError


def _tissue(ids: tuple[str, ...], table: Path) -> np.ndarray:
    tissue = read_tissue(table)
    return np.asarray([tissue.get(i, 1.0) for i in ids])


def project_view(folder: str | Path) -> ModelView:
    """The project's latest trained model over its items; scores of that round's selection."""
    folder = Path(folder)
    cfg, class_names, state, round_id = latest_model(folder)
    store = open_project(folder)
    data, image_ids = project_data(store, cfg)
    learner = model_learner(cfg, class_names, state, data)
    ids = data.catalogue.ids
    row_of = {int(image_id): k for k, image_id in enumerate(image_ids)}
    queued = np.zeros(len(ids), bool)
    for (image_id,) in store.conn.execute("SELECT image_id FROM queue"):
        queued[row_of[int(image_id)]] = True
    return ModelView(
        ids=ids,
        learner=learner,
        data=data,
        class_names=class_names,
        score=scores_by_index(scores_file(folder, round_id), row_of, len(ids)),
        labelled=data.catalogue.labels >= 0,
        queued=queued & (data.catalogue.labels < 0),
        tissue=_tissue(ids, folder / TILE_TABLE),
        title=f"project {folder.name}, round {round_id}'s model ({int((data.catalogue.labels >= 0).sum())} labels)",
    )


def run_view(folder: str | Path) -> ModelView:
    """A simulation run's last saved model over its catalogue: labelled = the run's labelled set
    at that round, queued = the items its selections queried; scores of the selection made with
    that model, else of the last one."""
    from unisal.config.checks import from_dict
    from unisal.data.prepare import prepare_data
    from unisal.device import resolve_device
    from unisal.learners import create_learner
    from unisal.pipeline import pixels_needed
    from unisal.run_folder import RunFolder

    run = RunFolder(folder)
    if not run.holds_run():
        raise RunError(f"{folder} holds no unisal run (no config.yaml and state.json)")
    cfg = from_dict(run.read_config())
    state = run.read_state()
    rounds = [r for r in range(state.round + 1) if run.has_checkpoint(r)]
    if not rounds:
        raise RunError(f"{folder} has no saved model yet (no round finished)")
    round_ = rounds[-1]
    data = prepare_data(cfg.data, cfg.seed, pixels_needed=pixels_needed(cfg))
    names = list(data.catalogue.class_names)
    learner = create_learner(cfg, len(names), resolve_device(cfg.device))
    learner.prepare(data)
    learner.load_state_dict(run.load_checkpoint(round_))
    n = len(data.catalogue)
    score_files = sorted((int(p.stem.split("_")[1]), p) for p in (run.root / "scores").glob("round_*.npz"))
    chosen = next((p for k, p in score_files if k == round_ + 1), score_files[-1][1] if score_files else None)
    labelled_round = state.labelled_round
    done = (labelled_round >= 0) & (labelled_round <= round_)
    return ModelView(
        ids=data.catalogue.ids,
        learner=learner,
        data=data,
        class_names=names,
        score=scores_by_index(chosen, {i: i for i in range(n)}, n),
        labelled=done,
        queued=done & (labelled_round >= 1),
        tissue=_tissue(data.catalogue.ids, Path(cfg.data.path)),
        title=f"run {Path(folder).name}, round {round_}'s model ({int(done.sum())} labels)",
    )


def model_view(*, project: str | Path | None, run: str | Path | None) -> ModelView:
    if (project is None) == (run is None):
        raise ProjectError("give --project DIR or --run DIR (one of them)")
    return project_view(project) if project is not None else run_view(run)  # type: ignore[arg-type]


__all__ = ["model_view", "project_view", "run_view"]
