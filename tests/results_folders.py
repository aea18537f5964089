"""Results folders built without Ray, for the tests that read, classify, report or damage one:
the frozen spec, runs.parquet and each run's metrics in one part, as a driver leaves them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from grokgrid import grid, store
from grokgrid.schedule import logged_steps
from grokgrid.spec import dump_spec, spec_from_dict

# Two runs, repr_lr swept; every other hyperparameter (seed included) has a single value.
SMALL = {
    "name": "small",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 40, "eval_every": 10},
    "grid": {"repr_lr": [1e-3, 3e-2]},
    "resources": {"pack_size": 1},
}


def write_spec(folder: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_results(root: Path, data: dict = SMALL, done: int | None = None) -> tuple[Path, Path]:
    """The spec file ``root/<name>.yaml`` and its results folder ``root/results/<name>``: whole
    metrics to the last step for the first ``done`` runs (all by default), to half way for the
    others (their status 'pending', as a driver stopped mid-sweep leaves them). Returns both paths."""
    spec = spec_from_dict(data)
    spec_path = write_spec(root, data, f"{spec.name}.yaml")
    sweep_dir = root / "results" / spec.name
    runs = grid.expand(spec)
    done = len(runs) if done is None else done
    sweep_dir.mkdir(parents=True)
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec))
    table = pd.DataFrame(
        [{"run_id": r.run_id, "pack_id": p.pack_id, **r.hyperparameters(), "status": "done" if i < done else "pending",
          "node_id": ""}
         for i, (r, p) in enumerate(zip(runs, grid.pack(runs, 1)))]
    )
    store.write_runs(sweep_dir, table)
    steps = logged_steps(spec)
    for i, run in enumerate(runs):
        last = spec.training.steps if i < done else spec.training.steps // 2
        rows = [{c: 0.5 for c in store.METRIC_COLUMNS} | {"run_id": run.run_id, "step": s, "stage": 0, "train_acc": 1.0}
                for s in steps if s <= last]
        store.write_metrics_part(sweep_dir, run.run_id, rows)
    return spec_path, sweep_dir
