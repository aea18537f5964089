"""bench/liu_fidelity.py's and bench/liu_splits.py's machinery on small inputs (their runs are bench runs)."""

from __future__ import annotations

import bench_modules

liu = bench_modules.load("liu_fidelity")
splits = bench_modules.load("liu_splits")


def test_phase_rule_is_liu_s():
    assert liu.phase_of(None, None) == liu.phase_of(None, 50) == "confusion"
    assert liu.phase_of(100, None) == "memorization"
    assert liu.phase_of(100, 1099) == "comprehension"
    assert liu.phase_of(100, 1100) == "grokking"  # a gap of exactly 1,000 steps is grokking
    assert liu.first_step_at([0.1, 0.95, 0.5, 0.9]) == 1
    assert liu.first_step_at([0.1, 0.89]) is None


def test_splits_are_the_seeds_own():
    # grokgrid's split is seeding.split_mask's; the authors' draws templates first, then the pairs.
    assert int(liu.grokgrid_split(3).sum()) == int(liu.reference_split(3).sum()) == 45
    assert not bool((liu.grokgrid_split(0) == liu.reference_split(0)).all())
    assert liu.ideal_accuracy(liu.grokgrid_split(1)) == 0.8 and liu.ideal_accuracy(liu.grokgrid_split(1, "determined")) == 1.0
    assert liu.ideal_accuracy(liu.reference_split(0)) == 0.5  # what their code prints for seed 0


def test_grokgrid_phases_label_every_cell_and_seed():
    labels = liu.grokgrid_phases([0, 1], [1e-2], [1e-4, 1e-3], steps=100, split="determined")
    assert set(labels) == {(s, 1e-2, d) for s in (0, 1) for d in (1e-4, 1e-3)}
    assert set(labels.values()) <= {"comprehension", "grokking", "memorization", "confusion"}


def test_liu_splits_reads_each_sweep_s_own_splits(tmp_path):
    task, fractions, seeds, threshold, folder = splits.sweep_grid("liu_lr")
    assert task.split == "determined" and fractions == [0.82] and seeds == [0, 1, 2] and folder == "liu-lr"
    assert [splits.split_ideal_accuracy(task, 0.82, s) for s in seeds] == [1.0, 1.0, 1.0]
    task, *_ = splits.sweep_grid("liu_fraction")
    assert task.split == "random" and splits.split_ideal_accuracy(task, 0.82, 1) == 0.8  # liu_lr's seed 1 before
    assert splits.trained_runs(tmp_path, "liu-lr") == {} and splits.trained_runs(None, "liu-lr") == {}
