"""bench/liu_fidelity.py's and bench/liu_splits.py's machinery on small inputs (their runs are bench runs)."""

from __future__ import annotations

import bench_modules

liu = bench_modules.load("liu_fidelity")
splits = bench_modules.load("liu_splits")


def test_the_authors_runs_are_labelled_by_liu_lr_s_rule():
    criteria = liu.liu_lr_criteria()

    def rising_at(t, steps=1500):  # accuracy 0.95 from step t on (None: never), 0 before
        return [0.95 if t is not None and s >= t else 0.0 for s in range(steps)]

    def phase(t_train, t_val):
        return liu.curve_phase(rising_at(t_train), rising_at(t_val), criteria)

    assert phase(None, None) == phase(None, 50) == "confusion"
    assert phase(100, None) == "memorization"
    assert phase(100, 1099) == "comprehension"
    assert phase(100, 1100) == "grokking"  # a gap of exactly 1,000 steps is grokking
    # The first step at 0.9 counts, whatever follows: train 0.95 at step 1 only, val from 1,001.
    train = [0.1, 0.95] + [0.5] * 1198
    assert liu.curve_phase(train, [0.0] * 1001 + [0.9] * 199, criteria) == "grokking"
    assert liu.curve_phase(train, [0.0] * 1000 + [0.9] * 200, criteria) == "comprehension"


def test_splits_are_the_seeds_own():
    # grokgrid's split is seeding.split_mask's; the authors' draws templates first, then the pairs.
    assert int(liu.grokgrid_split(3).sum()) == int(liu.reference_split(3).sum()) == 45
    assert not bool((liu.grokgrid_split(0) == liu.reference_split(0)).all())
    assert liu.ideal_accuracy(liu.grokgrid_split(1)) == 0.8 and liu.ideal_accuracy(liu.grokgrid_split(1, "determined")) == 1.0
    assert liu.ideal_accuracy(liu.reference_split(0)) == 0.5  # what their code prints for seed 0


def test_same_splits_answers_only_the_draw_of_the_training_ids():
    import numpy as np

    def draws():  # train_add's draw of its training ids, a minibatch draw, two more draws
        return (np.random.choice(55, 45, replace=False), np.random.choice(np.arange(45), 45, replace=False),
                np.random.choice(55, 10, replace=False), np.random.rand(3))

    np.random.seed(0)
    unpatched = draws()
    split, original = liu.grokgrid_split(6, "determined"), np.random.choice
    np.random.seed(0)
    with liu.training_ids(split):
        patched = draws()
    assert np.random.choice is original  # put back on the way out
    assert list(patched[0]) == list(np.flatnonzero(split.numpy())) != sorted(unpatched[0])
    # Only that draw is answered, and it consumed numpy's stream as the real one does: the
    # minibatch draws and everything after are numpy's own, as without the patch.
    for ours, theirs in zip(patched[1:], unpatched[1:]):
        assert list(ours) == list(theirs)


def test_grokgrid_phases_label_every_cell_and_seed():
    labels = liu.grokgrid_phases([0, 1], [1e-2], [1e-4, 1e-3], steps=100, split="determined")
    assert set(labels) == {(s, 1e-2, d) for s in (0, 1) for d in (1e-4, 1e-3)}
    assert set(labels.values()) <= {"comprehension", "grokking", "memorization", "confusion"}


def test_liu_splits_reads_each_sweep_s_own_splits(tmp_path):
    task, fractions, seeds, threshold, folder = splits.sweep_grid("liu_lr")
    assert task.split == "determined" and fractions == [0.82] and seeds == [0, 1, 2] and folder == "liu-lr"
    assert [task.ideal_accuracy(0.82, s) for s in seeds] == [1.0, 1.0, 1.0]
    task, *_ = splits.sweep_grid("liu_fraction")
    assert task.split == "random" and task.ideal_accuracy(0.82, 1) == 0.8  # liu_lr's seed 1 before
    assert splits.trained_runs(tmp_path, "liu-lr") == {} and splits.trained_runs(None, "liu-lr") == {}


def test_a_split_s_unseen_answers_cap_it_above_liu_s_ideal_accuracy():
    import torch

    from grokgrid.tasks.toy_addition import ToyAddition

    toy = ToyAddition(10)
    everything_but_nine_nine = torch.ones(55, dtype=torch.bool)
    everything_but_nine_nine[-1] = False  # (9, 9) is the only pair with the answer 18
    assert splits.seen_answer_share(10, everything_but_nine_nine) == 0.0
    task, *_ = splits.sweep_grid("liu_fraction")
    for seed in range(40):  # a determined pair has a training pair with its answer: never the other way round
        mask = task.split_mask(task.n_examples, 0.6, seed)
        assert splits.seen_answer_share(10, mask) >= toy.ideal_accuracy(mask)


def test_at_least_probability_is_the_poisson_binomial_tail():
    assert splits.at_least_probability([0.5, 0.5], 1) == 0.75
    assert splits.at_least_probability([1.0, 0.0, 0.5], 2) == 0.5
    assert splits.at_least_probability([0.3, 0.2], 0) == 1.0 and splits.at_least_probability([0.3], 2) == 0.0


def test_claim_ceilings_count_the_runs_a_claim_selects():
    spec = splits.sweep_spec("liu_fraction")
    fractions, seeds = spec.grid.train_fraction, spec.grid.seed
    own = {(f, s): f >= 0.8 for f in fractions for s in seeds}
    (line,) = splits.claim_ceilings(spec, {f: 0.5 for f in fractions}, own)
    assert "common" in line and ">= 0.75 of 20 runs (15)" in line and "10 of this sweep's 20 splits" in line
    assert "expected share is 0.50" in line and f"probability {splits.at_least_probability([0.5] * 20, 15):.2g}" in line
    (line,) = splits.claim_ceilings(spec, {f: 1.0 for f in fractions}, own)
    assert "probability 1" in line
