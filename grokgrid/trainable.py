"""The Ray Tune trainable: one trial trains one pack and files its runs' metrics.

A thin adapter: it rebuilds the spec and the pack from the trial config, trains it with
``train.PackTrainer``, writes each run's rows as Parquet parts (every ``resources.flush_every``
steps, so a crash loses at most that much) and reports progress to Tune.

Checkpoints (every ``resources.checkpoint_every`` steps, at the first logged step at or after
each multiple, and once more at the end): first every buffered row is flushed, so the parts on
disk end exactly at the checkpoint's step; then the pack's state is saved twice, as a
``tune.Checkpoint`` (what ``Tuner.restore`` and a retry after a lost node hand back through
``tune.get_checkpoint()``) and as ``results/<sweep>/checkpoints/<pack_id>/state.pt`` (written
atomically; what a resume without Tune's state uses). A trial starts from the later of the two;
the parts its runs have after that step came from work the checkpoint does not hold, so they are
deleted before training goes on, and every (run_id, step) is written exactly once.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from grokgrid import checkpoint, completion, store, train
from grokgrid.grid import Pack
from grokgrid.spec import spec_from_dict
from grokgrid.location import Location, as_location

log = logging.getLogger(__name__)

# Tune reports per trial: enough for a smooth progress bar, few enough to cost the driver nothing.
REPORTS_PER_TRIAL = 50
CHECKPOINT_FILE = "state.pt"


def param_space(spec_dict: dict[str, Any], sweep_dir: Location, packs: list[Pack], threads: int) -> dict[str, Any]:
    """Tune's param space: the shared config, and a grid over packs (one trial per pack). The
    results folder travels as text (a local path or a URI) that each worker opens itself."""
    return {
        "spec": spec_dict,
        "sweep_dir": as_location(sweep_dir).uri,
        "threads": threads,
        "pack": tune.grid_search([p.to_dict() for p in packs]),
    }


def pack_checkpoint_path(sweep_dir: Location, pack_id: str) -> Location:
    """The pack's latest checkpoint in the results folder (DESIGN.md section 1)."""
    return as_location(sweep_dir) / store.CHECKPOINTS_DIR / pack_id / CHECKPOINT_FILE


class _PartWriter:
    """Buffers each run's rows and writes them as one Parquet part per flush."""

    def __init__(self, sweep_dir: Location, run_ids: list[str]):
        self.sweep_dir = sweep_dir
        self.buffers: dict[str, list[dict]] = {r: [] for r in run_ids}

    def add(self, rows: list[dict]) -> None:
        for row in rows:
            self.buffers[row["run_id"]].append(row)

    def flush(self) -> None:
        for run_id, rows in self.buffers.items():
            store.write_metrics_part(self.sweep_dir, run_id, rows)
            rows.clear()


def _load(source: str, path: Location, trainer: train.PackTrainer, pack_id: str) -> dict | None:
    try:
        if path.local is not None:
            data = checkpoint.load_checkpoint(path.local)
        else:  # torch reads a local file: fetch the checkpoint's bytes into one first
            with tempfile.TemporaryDirectory(prefix="grokgrid-ckpt-") as d:
                copy = Path(d) / CHECKPOINT_FILE
                copy.write_bytes(path.read_bytes())
                data = checkpoint.load_checkpoint(copy)
        if data.get("pack_id") != pack_id or list(data["all_run_ids"]) != list(trainer.all_run_ids):
            raise ValueError("it belongs to another pack")
        return data
    except Exception as exc:  # noqa: BLE001 - an unusable checkpoint costs recomputation only
        log.warning("pack %s: ignoring the %s checkpoint %s: %s", pack_id, source, path, exc)
        return None


def _restore(trainer: train.PackTrainer, sweep_dir: Location, pack_id: str) -> int | None:
    """Load the latest usable checkpoint of this pack into ``trainer``; returns its step, or
    None when the pack starts from scratch. Tune's checkpoint (a restored experiment, a retried
    trial) and the results folder's are both candidates: every checkpoint is taken right after a
    flush, so either one is consistent with the parts on disk and the later one wins. A torn,
    foreign or other pack's checkpoint is skipped with a warning (an earlier start only costs
    recomputation, never different numbers)."""
    found: list[dict] = []
    tune_checkpoint = tune.get_checkpoint()
    if tune_checkpoint is not None:
        try:
            with tune_checkpoint.as_directory() as d:
                data = _load("Tune", as_location(Path(d) / CHECKPOINT_FILE), trainer, pack_id)
        except Exception as exc:  # noqa: BLE001 - e.g. a checkpoint Tune's (older) state names was since rotated away
            log.warning("pack %s: ignoring Tune's checkpoint %s: %s", pack_id, tune_checkpoint.path, exc)
            data = None
        if data is not None:
            found.append(data)
    path = pack_checkpoint_path(sweep_dir, pack_id)
    if path.is_file():
        data = _load("results-folder", path, trainer, pack_id)
        if data is not None:
            found.append(data)
    metrics, unreadable = store.scan_metrics(sweep_dir, trainer.all_run_ids)
    for data in sorted(found, key=lambda data: int(data["trainer"]["step"]), reverse=True):
        step = int(data["trainer"]["step"])
        # The checkpoint assumes every row up to its step is on disk (it came right after a
        # flush); a run whose rows there are missing or torn (a damaged part since) would be
        # left with a hole, so such a checkpoint is not used.
        holes = completion.whole_up_to(trainer.spec, step, trainer.all_run_ids, metrics, unreadable)
        if holes:
            log.warning("pack %s: not using its checkpoint of step %d: run %s lacks rows up to it", pack_id, step, holes[0])
            continue
        checkpoint.restore_checkpoint(trainer, data)
        return trainer.step
    return None


def _save(trainer: train.PackTrainer, sweep_dir: Location, pack_id: str, metrics: dict[str, Any]) -> None:
    """Persist the pack's state (results folder first, then Tune) and report ``metrics`` with it."""
    with tempfile.TemporaryDirectory(prefix="grokgrid-ckpt-") as d:
        local = Path(d) / CHECKPOINT_FILE
        checkpoint.save_checkpoint(trainer, local, pack_id=pack_id)
        pack_checkpoint_path(sweep_dir, pack_id).write_bytes(local.read_bytes())  # atomic
        # Tune copies the folder into the trial's storage before report() returns.
        tune.report({**metrics, "checkpoint_step": trainer.step}, checkpoint=tune.Checkpoint.from_directory(d))


def train_pack_trial(config: dict[str, Any]) -> None:
    spec = spec_from_dict(config["spec"])
    pack = Pack.from_dict(config["pack"])
    sweep_dir = as_location(config["sweep_dir"])
    device = train.configure_worker(threads=int(config["threads"]))
    run_ids = [r.run_id for r in pack.runs]
    trainer = train.PackTrainer(spec, pack.runs, device)
    restored = _restore(trainer, sweep_dir, pack.pack_id)
    # The trial owns its runs' metrics after its starting point: what an earlier attempt wrote
    # there came from work that no checkpoint holds, and is written again below.
    start = 0 if restored is None else restored + 1
    for run_id in run_ids:
        store.clear_metrics_from(sweep_dir, run_id, start)
        # A driver killed mid-write (SIGKILL, a lost node) leaves half a temp file behind.
        store.remove_stale_temp_files(sweep_dir / store.METRICS_DIR / f"run_id={run_id}")
    store.remove_stale_temp_files(pack_checkpoint_path(sweep_dir, pack.pack_id).parent)
    # In every report: where this attempt started from, and which node trains the pack.
    marker = {"restored_from_step": -1 if restored is None else restored, "node_id": _node_id()}

    writer = _PartWriter(sweep_dir, run_ids)
    total = spec.total_steps
    every = spec.resources.checkpoint_every
    report_every = max(1, total // REPORTS_PER_TRIAL)
    step = trainer.step
    next_flush = step + spec.resources.flush_every
    next_checkpoint = (step // every + 1) * every
    next_report = step
    for rows in trainer.rows():
        writer.add(rows)
        step = rows[0]["step"]
        if step >= next_checkpoint and step < total:
            writer.flush()  # the parts end at this step: exactly what the checkpoint holds
            _save(trainer, sweep_dir, pack.pack_id, {**_progress(rows, step), **marker})
            next_flush = step + spec.resources.flush_every
            next_checkpoint = (step // every + 1) * every
            next_report = step + report_every
            continue
        if step >= next_flush:
            writer.flush()
            next_flush = step + spec.resources.flush_every
        if next_report <= step < total:
            tune.report({**_progress(rows, step), **marker})
            next_report = step + report_every
    writer.flush()
    # The last report comes after the last flush: "done" means every row is on disk. It is at
    # step `total` even when all runs diverged earlier, so the driver's progress ends at 100%.
    # Its checkpoint holds the finished pack, so a trial rerun after this point trains nothing.
    _save(trainer, sweep_dir, pack.pack_id, {"step": total, "active_runs": 0, "done": True, **marker})


def _node_id() -> str:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker (a trial driven directly in tests)
        return ""


def _progress(rows: list[dict], step: int) -> dict[str, Any]:
    n = len(rows)
    return {
        "step": step,
        "active_runs": n,
        "mean_train_acc": sum(r["train_acc"] for r in rows) / n,
        "mean_val_acc": sum(r["val_acc"] for r in rows) / n,
        "done": False,
    }
