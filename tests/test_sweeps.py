"""Every spec in sweeps/ loads, validates, and trains at smoke size (a few steps of two runs)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from grokgrid import grid, store, train
from grokgrid.spec import load_spec

SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.yaml"))


def test_there_is_a_sweep_per_task_family():
    families = {load_spec(path).task.name for path in SWEEPS}
    assert families >= {"toy_addition", "modular", "permutation", "digits", "sparse_linear", "matrix_completion"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_is_valid_and_names_are_unique(path):
    spec = load_spec(path)
    assert spec.grid.size() >= 1
    assert [load_spec(p).name for p in SWEEPS].count(spec.name) == 1


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_trains_at_smoke_size(path):
    spec = load_spec(path)
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=2, eval_every=1))
    runs = grid.expand(spec)[:2]
    rows = [row for step_rows in train.run_pack(spec, runs) for row in step_rows]
    assert sorted((r["run_id"], r["step"]) for r in rows) == sorted((run.run_id, s) for run in runs for s in (0, 1, 2))
    for row in rows:
        assert set(row) == set(store.METRIC_COLUMNS)
        assert math.isfinite(row["train_loss"]) and 0 <= row["val_acc"] <= 1
