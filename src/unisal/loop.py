"""The simulated active-learning loop: train -> evaluate -> score pool -> select -> label.

A thin composition of a learner (:mod:`unisal.learners`), a strategy (:mod:`unisal.query`), the
AL state (:mod:`unisal.state`) and the run folder (:mod:`unisal.run_folder`). The state is
written atomically after every step, together with the trained networks, so that ``resume``
continues a killed run without redoing finished work. Every random draw of round ``r`` comes
from a generator seeded by ``(seed, r, purpose)``, which makes a resumed run end with the same
queries and metrics as an uninterrupted one on the same machine.

Nothing is written to the output folder before every setting has been checked, the data read
and the learner prepared (weights loaded, feature cache built).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from unisal.config import RunConfig
from unisal.data.prepare import PreparedData, prepare_data
from unisal.device import resolve_device
from unisal.diagnostics import round_diagnostics
from unisal.errors import RunError
from unisal.events import message
from unisal.io import check_creatable
from unisal.learners import Learner, create_learner
from unisal.pipeline import (
    check_run_settings,
    cross_validate,
    fit_round,
    make_strategy,
    pixels_needed,
    select,
    stop_predictions,
    unlabelled_for,
)
from unisal.query import Strategy
from unisal.resume import check_folder, check_resumed
from unisal.run_folder import RunFolder
from unisal.seeds import round_seed
from unisal.state import NOT_LABELLED, ALState
from unisal.stopping import stop_set, stop_signal
from unisal.threads import configure_threads, resumed_threads

__all__ = ["NOT_LABELLED", "ALState", "ActiveLearningRun", "RunError", "check_run_settings", "make_strategy"]


class ActiveLearningRun:
    """A simulated AL experiment in one output folder; oracle labels come from the catalogue.

    The constructor checks the settings and does no I/O; :meth:`run` does the work.
    """

    def __init__(
        self,
        cfg: RunConfig,
        *,
        resume: bool = False,
    ):
        check_run_settings(cfg)
        check_creatable(cfg.out)
        self.cfg = cfg
        self.resume = resume
        self.device = resolve_device(cfg.device)
        self.folder = RunFolder(cfg.out)
        self.data: PreparedData | None = None
        self.learner: Learner | None = None
        self.strategy: Strategy | None = None
        self.state: ALState | None = None

    # ---- set-up: read and check everything, then write
    def _check_sizes(self, data: PreparedData) -> None:
        cfg, pool = self.cfg, len(data.idx_train)
        if pool == 0:
            raise RunError("the training pool is empty after the split")
        need = cfg.initial + cfg.rounds * cfg.query.budget
        if need > pool:
            raise RunError(
                f"initial ({cfg.initial}) + rounds ({cfg.rounds}) x budget ({cfg.query.budget}) = {need} "
                f"labels, but the training pool holds only {pool} images"
            )
        if len(data.idx_test) == 0:
            raise RunError("the test split is empty; add images or raise test_fraction")

    def _check_memory(self, data: PreparedData) -> None:
        """The batch, capped at the data (see ``batch_sizes``), must fit the device's free memory."""
        from unisal.memory import SAFETY, available_bytes, describe
        from unisal.train.fit import batch_sizes

        assert self.learner is not None
        cfg = self.cfg
        n_ulb = len(data.idx_train) - cfg.initial + len(data.idx_unlabelled_extra)
        semi = cfg.learner.mode == "cotrain"
        n_lb, n_ulb_step = batch_sizes(cfg.train, semi, cfg.initial + n_ulb)
        if n_lb + n_ulb_step < cfg.train.batch_size:
            message(
                f"--batch-size {cfg.train.batch_size} is more than the data holds: {n_lb + n_ulb_step} images a step"
            )
        need = self.learner.step_bytes(n_lb + n_ulb_step)
        free = available_bytes(self.device)
        if free is not None and need > SAFETY * free:
            raise RunError(
                f"one training step on {n_lb + n_ulb_step} images needs about {describe(need)}, more than the "
                f"{describe(free)} free on {self.device}; lower --batch-size (now {cfg.train.batch_size})"
            )

    def _load_or_start(self, data: PreparedData) -> ALState:
        folder = self.folder
        if self.resume:
            state = folder.read_state()
            check_resumed(folder, data, state)
            if self.cfg.rounds < state.round:
                raise RunError(f"--resume: the run in {folder.root} has already reached round {state.round}")
            if state.stage == "done" and self.cfg.rounds > state.round:
                state.stage = "select"  # extend a finished run: query after its last round
            folder.write_config(self.cfg)
            message(f"resuming {folder.root} at round {state.round} ({state.stage})")
            return state
        folder.create()
        folder.write_config(self.cfg)
        folder.write_splits(data)
        state = ALState(np.full(len(data.catalogue), NOT_LABELLED, np.int64))
        rng = np.random.default_rng(round_seed(self.cfg.seed, 0, "initial"))
        state.label(np.sort(rng.choice(data.idx_train, size=self.cfg.initial, replace=False)), 0)
        folder.write_state(state)
        return state

    def setup(self, data: PreparedData | None = None) -> None:
        """Read the data and prepare the learner; the first write to ``--out`` comes last.

        Call it inside :meth:`run` (which holds the folder's lock), not on its own.

        Args:
            data: the data already prepared with this run's data settings and seed (a benchmark
                shares them between the runs of a seed); read here when None.
        """
        cfg = self.cfg
        check_folder(self.folder, cfg, resume=self.resume)
        recorded = self.folder.read_config().get("threads") if self.resume else None
        # The number used is recorded in config.yaml: a resumed run sums in the same order.
        cfg.threads = configure_threads(resumed_threads(cfg.threads, recorded))
        if data is None:
            data = prepare_data(cfg.data, cfg.seed, pixels_needed=pixels_needed(cfg))
            for note in data.notes:
                message(note)
        self._check_sizes(data)
        self.learner = create_learner(cfg, len(data.catalogue.class_names), self.device)
        self._check_memory(data)
        self.learner.prepare(data)
        self._check_sizes(data)  # again: streamed items found unreadable may have left the pool
        self.strategy = make_strategy(cfg)
        self.data = data
        self.state = self._load_or_start(data)

    # ---- steps
    def _parts(self) -> tuple[PreparedData, Learner, Strategy, ALState]:
        if self.data is None or self.learner is None or self.strategy is None or self.state is None:
            raise RuntimeError("ActiveLearningRun.setup() must run first")
        return self.data, self.learner, self.strategy, self.state

    def train_and_evaluate(self, round_: int) -> dict[str, Any]:
        data, learner, _, state = self._parts()
        labels = data.catalogue.labels
        idx_lb = state.labelled()
        idx_ulb = unlabelled_for(data, idx_lb)
        estimate = self.cv_estimate(round_, idx_lb, idx_ulb)
        result = fit_round(learner, data, idx_lb, idx_ulb, seed=self.cfg.seed, round_=round_)
        self.folder.write_history(round_, result.history)
        metrics, matrix = learner.evaluate(data.idx_test, labels[data.idx_test])
        self.folder.write_confusion(round_, data.catalogue.class_names, matrix)
        # With a supervised companion (guard, warm start): both sets of heads on the test split, to
        # measure the guard by; never used for a decision
        alternatives = {
            f"accuracy_{name}": round(
                learner.evaluate(data.idx_test, labels[data.idx_test], nets=nets)[0]["accuracy"], 6
            )
            for name, nets in learner.alternatives.items()
        }
        signals = self.round_signals(round_)
        self.folder.save_checkpoint(
            round_, {"round": round_, "class_names": data.catalogue.class_names, **learner.state_dict()}
        )
        return {
            "round": round_,
            "n_labeled": len(idx_lb),
            "n_val": len(data.idx_val),  # validation labels used for model selection, on top of n_labeled
            "n_labeled_total": len(idx_lb) + len(data.idx_val),  # every label the run cost: draw curves on it
            **{k: round(v, 6) for k, v in metrics.items()},
            "train_seconds": round(result.seconds, 2),
            "best_epoch": result.best_epoch,
            "val_accuracy": "" if result.best_val_accuracy is None else round(result.best_val_accuracy, 6),
            **signals,
            **estimate,
            **(result.guard or {}),
            **alternatives,
        }

    def cv_estimate(self, round_: int, idx_lb: np.ndarray, idx_ulb: np.ndarray) -> dict[str, Any]:
        """What a lab without a test set would be told (``query.cv_folds`` > 1): the accuracy of
        out-of-fold predictions over grouped folds of the labelled set, and its 95 % interval
        (:mod:`unisal.estimate`); empty when off or when the labels allow no two folds."""
        from unisal.estimate import grouped_folds, pooled_estimate

        data, learner, _, _ = self._parts()
        k, seed = self.cfg.query.cv_folds, self.cfg.seed
        labels, groups = data.catalogue.labels, data.catalogue.groups
        folds = (
            grouped_folds(labels[idx_lb], groups[idx_lb], k, round_seed(seed, round_, "cv")) if k > 1 else []
        )
        if not folds:
            return {}
        fold_scores, _ = cross_validate(learner, data, idx_lb, idx_ulb, folds, seed=seed, round_=round_)
        accuracy, low, high = pooled_estimate(fold_scores)
        return {"cv_accuracy": round(accuracy, 6), "cv_low": round(low, 6), "cv_high": round(high, 6)}

    def stop_set_indices(self) -> np.ndarray:
        """The run's stop set (catalogue indices): ``query.stop_set`` images of the pool the run
        started with, drawn from the seed, the same in every round and on resume."""
        data, _, _, _ = self._parts()
        rng = np.random.default_rng(round_seed(self.cfg.seed, 0, "stop_set"))
        return stop_set(data.idx_train, self.cfg.query.stop_set, rng)

    def round_signals(self, round_: int) -> dict[str, Any]:
        """What a round's model says about stopping and collapsing, from its predictions on the stop
        set (a seeded sample of the pool) and on the labelled set; empty when the stop set is off.

        ``stop_kappa``: Cohen's kappa of this and the previous round's predictions on the stop set
        (blank in round 0); ``stopped_changing``: 1 once the mean kappa of the last
        ``query.stop_window`` rounds reaches ``query.stop_kappa``; ``heads_agree``,
        ``pool_share_min`` and ``labelled_recall_min``: collapse signals
        (:func:`unisal.diagnostics.round_diagnostics`, whose whole record goes to
        ``diagnostics/round_<k>.json``).
        """
        data, learner, _, state = self._parts()
        q, names = self.cfg.query, data.catalogue.class_names
        idx = self.stop_set_indices()
        if len(idx) == 0:
            return {}
        predicted, logits = stop_predictions(learner, data, idx)
        ids = data.catalogue.ids
        self.folder.write_stop_predictions(round_, [ids[i] for i in idx], predicted)
        previous = self.folder.read_stop_predictions(round_ - 1) if round_ > 0 else None
        earlier = sorted((r for r in state.results if r["round"] < round_), key=lambda r: r["round"])
        kappa, stopped = stop_signal(
            previous,
            predicted,
            [None if r.get("stop_kappa", "") == "" else float(r["stop_kappa"]) for r in earlier],
            window=q.stop_window,
            threshold=q.stop_kappa,
        )
        idx_lb = state.labelled()
        diagnostics = round_diagnostics(
            logits, learner.predict(idx_lb).logits, data.catalogue.labels[idx_lb], names
        )
        self.folder.write_diagnostics(round_, diagnostics)
        recall_min = diagnostics["labelled_recall_min"]
        return {
            "stop_kappa": "" if kappa is None else round(kappa, 6),
            "stopped_changing": int(stopped),
            "heads_agree": diagnostics["heads_agree"],
            "pool_share_min": diagnostics["pool_share_min"],
            "labelled_recall_min": "" if recall_min is None else recall_min,
        }

    def select_and_label(self, round_: int) -> dict[str, Any]:
        data, learner, strategy, state = self._parts()
        cat, cfg = data.catalogue, self.cfg
        start = time.perf_counter()
        unlabelled = np.setdiff1d(data.idx_train, state.labelled())
        if cfg.query.pool_subset and len(unlabelled) > cfg.query.pool_subset:
            rng_subset = np.random.default_rng(round_seed(cfg.seed, round_, "subset"))
            unlabelled = np.sort(rng_subset.choice(unlabelled, size=cfg.query.pool_subset, replace=False))
        if strategy.needs_learner and not learner.nets:  # resumed between training and selection
            learner.load_state_dict(self.folder.load_checkpoint(round_))
        rng = np.random.default_rng(round_seed(cfg.seed, round_, "select"))
        selection = select(
            strategy,
            learner,
            data,
            pool=unlabelled,
            labelled=state.labelled(),
            budget=cfg.query.budget,
            rng=rng,
        )
        chosen = unlabelled[selection.positions]
        scores = selection.scores
        if scores is not None:  # the whole pool's scores, for maps; a strategy without any has none
            self.folder.write_scores(round_ + 1, unlabelled, scores)
        self.folder.write_queries(
            round_ + 1,
            [
                (
                    cat.relative(i),
                    cat.class_names[cat.labels[i]],
                    why,
                    "" if scores is None else f"{scores[p]:.6g}",
                )
                for i, p, why in zip(chosen, selection.positions, selection.reasons, strict=True)
            ],
        )
        state.label(chosen, round_ + 1)  # the oracle: simulation reveals the true labels
        return {**selection.stats, "select_seconds": round(time.perf_counter() - start, 2)}

    def run(self, data: PreparedData | None = None) -> list[dict[str, Any]]:
        """Lock the folder, set up, then train and select until the last round; the results per round.

        Args:
            data: prepared data to share (see :meth:`setup`).
        """
        if self.folder.root.exists() and not self.folder.root.is_dir():
            raise RunError(f"--out {self.folder.root} is a file, not a folder")
        created = not self.folder.root.exists()
        had_lock = self.folder.lock_file.exists()
        try:
            with self.folder.locked():
                try:
                    return self._run(data)
                except BaseException:  # failed before its first write: leave the folder as it was
                    if not had_lock and not (self.folder.holds_run() or self.folder.config_is_ours()):
                        self.folder.lock_file.unlink()  # while still held: no other process can own it
                    raise
        finally:
            if created and self.folder.root.is_dir() and not any(self.folder.root.iterdir()):
                self.folder.root.rmdir()

    def _run(self, data: PreparedData | None) -> list[dict[str, Any]]:
        if self.state is None:
            self.setup(data)
        _, learner, strategy, state = self._parts()
        while state.stage != "done":
            r = state.round
            if (
                state.stage == "select"
                and strategy.needs_learner
                and not learner.nets
                and not self.folder.has_checkpoint(r)
            ):
                message(f"round {r}: its checkpoint is missing; training the round again", topic="round")
                state.stage = "train"
            if state.stage == "train":
                message(f"round {r}: training on {len(state.labelled())} labelled images", topic="round")
                state.results = [x for x in state.results if x["round"] != r] + [self.train_and_evaluate(r)]
                row = state.results[-1]
                message(
                    f"round {r}: test accuracy {row['accuracy']:.4f}, macro F1 {row['macro_f1']:.4f}",
                    topic="round",
                )
                state.stage = "select" if r < self.cfg.rounds else "done"
            else:
                state.results[-1] |= self.select_and_label(r)
                state.round, state.stage = r + 1, "train"
                learner.nets = []
            self.folder.write_state(state)
        return state.results
