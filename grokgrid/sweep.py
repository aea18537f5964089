"""Build and run the Ray Tune experiment of a sweep: one trial per pack.

Joins a Ray cluster when given an address, else starts a local Ray inside this process (no
separate server step). Tune's own experiment state goes to ``results/<sweep>/tune``; our
metrics are written by the trials themselves (trainable.py), so Tune's loggers are turned off.
Progress reaches the caller through ``on_progress``/``on_pack_done`` callbacks, which keeps
printing in the CLI and Ray here.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

# Set before Ray is imported: Tune reads them at import and trial start.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # we write our own Parquet
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials use absolute paths
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from grokgrid import store  # noqa: E402
from grokgrid.grid import Pack  # noqa: E402
from grokgrid.spec import SweepSpec  # noqa: E402
from grokgrid.trainable import param_space, train_pack_trial  # noqa: E402


@dataclass(frozen=True)
class PackOutcome:
    pack_id: str
    run_ids: tuple[str, ...]
    ok: bool
    error: str | None = None


ProgressFn = Callable[[str, int], None]  # (pack_id, step reached)
PackDoneFn = Callable[[PackOutcome], None]


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or RAY_ADDRESS), else start a local Ray in-process."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


def parallel_slots(resources) -> int:
    """How many trials the cluster can run at once with these per-trial resources."""
    total = ray.cluster_resources()
    if resources.gpus_per_trial > 0:
        slots = int(total.get("GPU", 0) / resources.gpus_per_trial)
    else:
        slots = int(total.get("CPU", 1) / resources.cpus_per_trial)
    if resources.max_concurrent is not None:
        slots = min(slots, resources.max_concurrent)
    return max(1, slots)


class _TuneCallback(tune.Callback):
    """Forwards Tune's trial events to the plain callbacks of ``launch``."""

    def __init__(self, packs: dict[str, Pack], on_progress: ProgressFn | None, on_pack_done: PackDoneFn | None):
        self.packs = packs
        self.on_progress = on_progress
        self.on_pack_done = on_pack_done

    def __getstate__(self) -> dict:
        # Tune pickles its run config (callbacks included) into the experiment state; our
        # callables hold the CLI's console and locks and only mean something in this process.
        return {"packs": self.packs, "on_progress": None, "on_pack_done": None}

    def _pack_id(self, trial) -> str:
        return trial.config["pack"]["pack_id"]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.on_progress is not None:
            self.on_progress(self._pack_id(trial), int(result.get("step", 0)))

    def _done(self, trial, ok: bool) -> None:
        if self.on_pack_done is None:
            return
        pack = self.packs[self._pack_id(trial)]
        error = None if ok else _first_line(getattr(trial, "error_file", None))
        self.on_pack_done(PackOutcome(pack.pack_id, tuple(r.run_id for r in pack.runs), ok, error))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._done(trial, ok=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._done(trial, ok=False)


def _first_line(error_file: str | None) -> str:
    """The last line of a trial's traceback: the exception itself."""
    if not error_file or not Path(error_file).is_file():
        return "trial failed (no error file)"
    lines = [line for line in Path(error_file).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed"


def launch(
    spec: SweepSpec,
    sweep_dir: Path,
    packs: Sequence[Pack],
    *,
    on_progress: ProgressFn | None = None,
    on_pack_done: PackDoneFn | None = None,
) -> list[PackOutcome]:
    """Run every pack as a Tune trial and wait for all; returns one outcome per pack."""
    sweep_dir = Path(sweep_dir).resolve()
    # A fresh launch: Tune's state from an earlier launch describes other packs.
    shutil.rmtree(sweep_dir / store.TUNE_DIR, ignore_errors=True)
    resources = spec.resources
    threads = max(1, int(resources.cpus_per_trial))
    by_id = {p.pack_id: p for p in packs}
    trainable = tune.with_resources(train_pack_trial, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(spec.to_dict(), sweep_dir, list(packs), threads),
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=resources.max_concurrent,
            trial_name_creator=lambda trial: f"pack_{trial.config['pack']['pack_id']}",
            trial_dirname_creator=lambda trial: f"pack_{trial.config['pack']['pack_id']}",
        ),
        run_config=tune.RunConfig(
            name=store.TUNE_DIR,
            storage_path=str(sweep_dir),
            verbose=0,
            callbacks=[_TuneCallback(by_id, on_progress, on_pack_done)],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    results = tuner.fit()
    outcomes = []
    for result in results:
        pack = by_id[result.config["pack"]["pack_id"]]
        error = None if result.error is None else str(result.error).strip().splitlines()[-1]
        outcomes.append(PackOutcome(pack.pack_id, tuple(r.run_id for r in pack.runs), result.error is None, error))
    return outcomes
