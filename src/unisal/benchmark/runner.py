"""``unisal benchmark``: every arm x seed as a resumable run folder, then one table and one plot.

Layout of ``--out``::

    benchmark.yaml          the settings; a later call must match them (arms and seeds may grow)
    settings.md             what was run, with the command line
    runs/<arm>/seed<k>/     an ordinary ``unisal simulate`` run folder per arm and seed
    reference/seed<k>/      full supervision on the same split (metrics.json)
    results.csv             one row per arm, seed and round, plus the references
    summary.md, curves.png, curves.svg

Runs go seed by seed, so that an interrupted benchmark has whole seeds; a new call skips
finished runs, resumes a half-done one and goes on. Data are read and split once per seed, and
the frozen learner's feature cache is built once for all. With ``executor="ray"`` every run is a
Ray task instead (:mod:`unisal.benchmark.ray_executor`), with the same folders and results.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unisal.benchmark.report import RESULT_COLUMNS, write_report
from unisal.benchmark.spec import (
    FULL,
    Arm,
    Job,
    LearnerSpec,
    reference_folder,
    run_config,
)
from unisal.config import ConfigError, RunConfig, to_dict
from unisal.data.prepare import PreparedData, prepare_data
from unisal.device import resolve_device
from unisal.errors import RunError
from unisal.events import message
from unisal.io import check_creatable, write_csv_atomic, write_json_atomic, write_text_atomic
from unisal.loop import ActiveLearningRun
from unisal.pipeline import check_run_settings
from unisal.reference import supervised_reference
from unisal.resume import changed_settings
from unisal.run_folder import RunFolder
from unisal.threads import configure_threads

EXECUTORS = ("local", "ray")  # where runs go: this process, one at a time, or Ray tasks


@dataclass
class BenchmarkPlan:
    """What to run. ``base`` holds every setting but the strategy, learner, seed and folder."""

    base: RunConfig
    arms: list[Arm]
    seeds: list[int]
    out: Path
    default_learner: LearnerSpec
    reference: bool = True
    command: str = ""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # strategy -> its hyper-parameters
    # The full-supervision reference trains to convergence: this many passes over all pool labels
    # (a run's fixed step budget is a few passes over thousands of labels, and under-trains it).
    reference_passes: int = 30
    main_metric: str = "accuracy"  # what summary.md orders the arms by (macro_f1 for imbalanced classes)

    def configs(self) -> list[tuple[Arm, int, RunConfig]]:
        """Every run, seed by seed; each config checked (no I/O)."""
        unused = sorted(set(self.params) - {a.strategy for a in self.arms})
        if unused:
            raise ConfigError(f"--param names {', '.join(unused)}, which is not among --strategies")
        runs = [(arm, seed, self._config(arm, seed)) for seed in self.seeds for arm in self.arms]
        for _, _, cfg in runs:
            check_run_settings(cfg)
        return runs

    def _config(self, arm: Arm, seed: int) -> RunConfig:
        cfg = run_config(self.base, arm, seed, self.out)
        cfg.query.params = dict(self.params.get(arm.strategy, {}))
        return cfg

    def reference_config(self, seed: int) -> RunConfig:
        cfg = run_config(self.base, Arm("random", self.default_learner), seed, self.out)
        cfg.learner.mode = "supervised"
        cfg.out = str(reference_folder(self.out, seed))
        cfg.train.epochs, cfg.train.steps_per_epoch = self.reference_passes, None  # one pass per epoch
        return cfg

    def settings(self) -> dict[str, Any]:
        return {
            "base": to_dict(self.base),
            "arms": [f"{a.strategy}@{a.learner}" + "".join(f"+{r}" for r in a.recipes) for a in self.arms],
            "seeds": self.seeds,
            "reference": self.reference,
            "params": self.params,
            "reference_passes": self.reference_passes,
            "main_metric": self.main_metric,
        }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Benchmark:
    """Runs a :class:`BenchmarkPlan`; nothing is written to ``out`` before every check passed.

    It reports through events (:mod:`unisal.events`): a message after every run (``[k/N] ...``,
    with the time left), the runs' own messages (their per-round lines under the topic
    ``round``) and the progress of every task (the caches' as ``long`` tasks).
    """

    def __init__(self, plan: BenchmarkPlan, *, executor: str = "local", address: str | None = None):
        if executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {list(EXECUTORS)}, not '{executor}'")
        if executor == "ray":  # tasks run elsewhere: every path they are given must be absolute
            from unisal.distributed import import_ray

            import_ray()  # not installed: a clear error before anything is written
            plan = dataclasses.replace(plan, out=plan.out.resolve())
        self.plan, self.executor, self.address = plan, executor, address
        self.runs = plan.configs()
        self.device = resolve_device(plan.base.device)
        self.spent: list[float] = []

    # ---- the folder
    def check_folder(self) -> None:
        out = self.plan.out
        check_creatable(out)
        if out.exists() and not out.is_dir():
            raise RunError(f"--out {out} is a file, not a folder")
        settings_file = out / "benchmark.yaml"
        if not settings_file.is_file():
            if out.is_dir() and any(out.iterdir()):
                raise RunError(f"--out {out} is not empty and holds no benchmark; choose another folder")
            return
        try:
            saved = yaml.safe_load(settings_file.read_text())["base"]
        except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise RunError(
                f"--out {out} holds a benchmark.yaml that unisal did not write ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:80] if str(exc) else 'no settings'}); choose another folder"
            ) from exc
        changed = changed_settings(saved, self.plan.base)
        if changed:
            raise RunError(
                f"the settings differ from those of the benchmark in {out} ({changed}; see its benchmark.yaml); "
                "only the strategies, learners, seeds and rounds may change: use the same settings or another --out"
            )

    def write_settings(self) -> None:
        out, plan = self.plan.out, self.plan
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "benchmark.yaml", yaml.safe_dump(plan.settings(), sort_keys=False))
        b = plan.base
        lines = [
            f"Command: `{plan.command}`" if plan.command else "",
            "",
            f"Data: `{b.data.path}`"
            + (f", groups `{b.data.groups}`" if b.data.groups else "")
            + f"; split by group, per seed: test {b.data.test_fraction}, validation {_validation(b)}.",
            f"Learner: {plan.default_learner} ({b.model.backbone}, {b.data.image_size} px, preset `{b.preset}`); "
            f"{b.initial} random initial labels, then {b.rounds} rounds of {b.query.budget}.",
            f"Full supervision: the same learner in supervised mode ({b.learner.networks} networks) on every pool "
            f"label, {plan.reference_passes} passes over them."
            if plan.reference
            else "Full supervision: not run (--no-reference).",
        ]
        write_text_atomic(out / "settings.md", "\n".join(lines) + "\n")

    # ---- one run
    def _run_one(self, arm: Arm, seed: int, cfg: RunConfig, data: PreparedData) -> None:
        if self._done(cfg):
            return
        resume = RunFolder(cfg.out).holds_run()
        ActiveLearningRun(cfg, resume=resume).run(data)

    def _reference(self, seed: int, data: PreparedData) -> None:
        path = reference_folder(self.plan.out, seed) / "metrics.json"
        if path.is_file():
            return
        cfg = self.plan.reference_config(seed)
        metrics, _, result = supervised_reference(cfg, data, data.idx_train, round_=0, device=self.device)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path,
            {
                "seed": seed,
                "n_labeled": int(len(data.idx_train)),
                **metrics,
                "train_seconds": round(result.seconds, 2),
                "learner": str(self.plan.default_learner) + ":supervised",
                "networks": cfg.learner.networks,
                "passes": self.plan.reference_passes,
            },
            indent=2,
        )

    # ---- results
    def collect(self) -> list[list[Any]]:
        """Rows of results.csv from every finished round of every run folder, and the references."""
        rows: list[list[Any]] = []
        for arm, seed, cfg in self.runs:
            folder = RunFolder(cfg.out)
            if not folder.holds_run():
                continue
            for r in folder.read_state().results:
                row = {
                    "arm": arm.label(self.plan.default_learner),
                    "strategy": arm.strategy,
                    "learner": str(arm.learner),
                    "seed": seed,
                    **r,
                }
                rows.append([row.get(c, "") for c in RESULT_COLUMNS])
        for seed in self.plan.seeds:
            path = reference_folder(self.plan.out, seed) / "metrics.json"
            if path.is_file():
                m = json.loads(path.read_text())
                row = {"arm": FULL, "strategy": "", "learner": m["learner"], "seed": seed, "round": "", **m}
                rows.append([row.get(c, "") for c in RESULT_COLUMNS])
        return rows

    def write_results(self) -> None:
        write_csv_atomic(self.plan.out / "results.csv", RESULT_COLUMNS, self.collect())

    # ---- all of it
    def _done(self, cfg: RunConfig) -> bool:
        folder = RunFolder(cfg.out)
        if not folder.holds_run():
            return False
        state = folder.read_state()
        return state.stage == "done" and state.round == cfg.rounds

    def jobs(self) -> list[Job]:
        """What is left to run, seed by seed: the unfinished runs, then the seed's reference."""
        plan, out = self.plan, []
        for seed in plan.seeds:
            out += [Job(seed, arm) for arm, s, cfg in self.runs if s == seed and not self._done(cfg)]
            if plan.reference and not (reference_folder(plan.out, seed) / "metrics.json").is_file():
                out.append(Job(seed))
        return out

    def run_job(self, job: Job, data: PreparedData) -> None:
        """One run (or the seed's reference) on the seed's data, in this process."""
        if job.arm is None:
            self._reference(job.seed, data)
        else:
            self._run_one(job.arm, job.seed, self._config(job), data)

    def _config(self, job: Job) -> RunConfig:
        return next(cfg for arm, seed, cfg in self.runs if arm == job.arm and seed == job.seed)

    def run(self) -> Path:
        """Run (or resume) everything; returns the path of summary.md."""
        plan = self.plan
        self.check_folder()
        configure_threads(plan.base.threads)
        total = len(self.runs) + (len(plan.seeds) if plan.reference else 0)
        jobs = self.jobs()
        done = total - len(jobs)
        message(
            f"benchmark: {len(plan.arms)} arms x {len(plan.seeds)} seeds = {len(self.runs)} runs"
            + (f" + {len(plan.seeds)} full-supervision references" if plan.reference else "")
            + (f"; {done} already done" if done else "")
            + (" (on Ray)" if self.executor == "ray" and jobs else "")
        )
        written = False
        for seed in plan.seeds:
            todo = [job for job in jobs if job.seed == seed]
            if not todo:
                continue
            # on Ray: the caches exist before any task
            data = prepare_data(plan.base.data, seed, pixels_needed=_pixels_needed(plan))
            for note in data.notes:
                message(f"seed {seed}: {note}")
            if not written:  # the data are readable: now the folder may be written
                self.write_settings()
                written = True
            if self.executor == "local":
                for job in todo:
                    start = time.perf_counter()
                    self.run_job(job, data)
                    done += 1
                    self.finished_job(job, time.perf_counter() - start, done, total)
                    self.write_results()
        if not written:
            self.write_settings()
        if self.executor == "ray" and jobs:
            from unisal.benchmark.ray_executor import run_on_ray

            count = [done]

            def finished(job: Job, seconds: float) -> None:
                count[0] += 1
                self.finished_job(job, seconds, count[0], total)
                self.write_results()

            gpus = 1 if self.device.type == "cuda" else 0
            run_on_ray(plan, jobs, task=execute, finished=finished, gpus=gpus, address=self.address)
        self.write_results()
        return write_report(plan.out, title="Benchmark")

    def finished_job(self, job: Job, seconds: float, done: int, total: int) -> None:
        """The progress line of a finished job, with the time left."""
        plan = self.plan
        self.spent.append(seconds)
        if job.arm is None:
            what, detail = f"{FULL}, seed {job.seed}", ""
        else:
            what, detail = f"{job.arm.label(plan.default_learner)}, seed {job.seed}", ""
            results = RunFolder(self._config(job).out).read_state().results
            if results:
                last = results[-1]
                detail = f": {last['n_labeled']} labels, accuracy {last['accuracy']:.4f}"
        eta = float(np.mean(self.spent)) * (total - done)
        message(f"[{done}/{total}] {what}{detail} ({_duration(seconds)}; about {_duration(eta)} left)")


def execute(plan: BenchmarkPlan, job: Job) -> float:
    """Run ``job`` of ``plan`` in this process (a Ray worker's task): its seconds."""
    start = time.perf_counter()
    if str(plan.base.device).startswith("cuda:"):  # a Ray task sees only its own GPU, as cuda:0
        plan = dataclasses.replace(plan, base=dataclasses.replace(plan.base, device="cuda"))
    bench = Benchmark(plan)
    configure_threads(plan.base.threads)
    bench.run_job(job, prepare_data(plan.base.data, job.seed, pixels_needed=_pixels_needed(plan)))
    return time.perf_counter() - start


def _pixels_needed(plan: BenchmarkPlan) -> bool:
    """Whether any arm's learner reads pixels after preparing (the data are prepared once per seed
    for every arm)."""
    from unisal.learners import learner_class

    learners = [arm.learner for arm in plan.arms] + ([plan.default_learner] if plan.reference else [])
    return any(learner_class(spec.name).reads_pixels for spec in learners)


def _validation(cfg: RunConfig) -> str:
    """The validation policy in words, for summary.md."""
    if cfg.data.val_size == 0:
        return "none (a fixed schedule, the last epoch kept)"
    if cfg.data.val_size is not None:
        return f"{cfg.data.val_size} images (n_val)"
    return f"{cfg.data.val_fraction} of all labelled images (n_val)"
