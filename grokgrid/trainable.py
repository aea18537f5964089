"""The Ray Tune trainable: one trial trains one pack and files its runs' metrics.

A thin adapter: it rebuilds the spec and the pack from the trial config, calls
``train.run_pack``, writes each run's rows as Parquet parts (every ``resources.flush_every``
steps, so a crash loses at most that much) and reports progress to Tune.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from grokgrid import store, train
from grokgrid.grid import Pack
from grokgrid.spec import spec_from_dict

# Tune reports per trial: enough for a smooth progress bar, few enough to cost the driver nothing.
REPORTS_PER_TRIAL = 50


def param_space(spec_dict: dict[str, Any], sweep_dir: Path, packs: list[Pack], threads: int) -> dict[str, Any]:
    """Tune's param space: the shared config, and a grid over packs (one trial per pack)."""
    return {
        "spec": spec_dict,
        "sweep_dir": str(Path(sweep_dir).resolve()),
        "threads": threads,
        "pack": tune.grid_search([p.to_dict() for p in packs]),
    }


class _PartWriter:
    """Buffers each run's rows and writes them as one Parquet part per flush."""

    def __init__(self, sweep_dir: Path, run_ids: list[str]):
        self.sweep_dir = sweep_dir
        self.buffers: dict[str, list[dict]] = {r: [] for r in run_ids}

    def add(self, rows: list[dict]) -> None:
        for row in rows:
            self.buffers[row["run_id"]].append(row)

    def flush(self) -> None:
        for run_id, rows in self.buffers.items():
            store.write_metrics_part(self.sweep_dir, run_id, rows)
            rows.clear()


def train_pack_trial(config: dict[str, Any]) -> None:
    spec = spec_from_dict(config["spec"])
    pack = Pack.from_dict(config["pack"])
    sweep_dir = Path(config["sweep_dir"])
    device = train.configure_worker(threads=int(config["threads"]))
    run_ids = [r.run_id for r in pack.runs]
    # A trial that starts from step 0 owns its runs' metrics: drop what an earlier attempt left.
    for run_id in run_ids:
        store.clear_metrics_from(sweep_dir, run_id, 0)
    writer = _PartWriter(sweep_dir, run_ids)
    total = spec.training.steps
    report_every = max(1, total // REPORTS_PER_TRIAL)
    next_flush, next_report = spec.resources.flush_every, 0
    for rows in train.run_pack(spec, pack.runs, device):
        writer.add(rows)
        step = rows[0]["step"]
        if step >= next_flush:
            writer.flush()
            next_flush = step + spec.resources.flush_every
        if next_report <= step < total:
            tune.report(_progress(rows, step))
            next_report = step + report_every
    writer.flush()
    # The last report comes after the last flush: "done" means every row is on disk. It is at
    # step `total` even when all runs diverged earlier, so the driver's progress ends at 100%.
    tune.report({"step": total, "active_runs": 0, "done": True})


def _progress(rows: list[dict], step: int) -> dict[str, Any]:
    n = len(rows)
    return {
        "step": step,
        "active_runs": n,
        "mean_train_acc": sum(r["train_acc"] for r in rows) / n,
        "mean_val_acc": sum(r["val_acc"] for r in rows) / n,
        "done": False,
    }
