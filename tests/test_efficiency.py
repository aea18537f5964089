"""bench/efficiency.py (issue 19): a run-step's FLOPs counted from the shapes run, against the
closed form for a model small enough to count by hand, and the matmul peak probe."""

from __future__ import annotations

import torch
from bench_modules import load

from grokgrid import grid
from grokgrid.spec import spec_from_dict


def test_a_run_steps_flops_are_the_matmuls_of_forward_and_backward():
    efficiency = load("efficiency")
    # The one-hot MLP on x + y mod 7: 2 x 7 one-hot inputs, one hidden layer of 16, 7 outputs;
    # 24 of the 49 pairs train (fraction 0.5). Its first layer is a table lookup (the rows of the
    # two tokens summed: no matmul, so no FLOPs by this count); the output layer's forward is
    # 2 * 16 * 7 FLOPs an example and its backward twice that (weight and input gradients).
    spec = spec_from_dict({"name": "f", "task": {"name": "modular", "p": 7, "op": "add"},
                           "model": {"name": "mlp", "embed_dim": 0, "hidden": [16]},
                           "training": {"steps": 10, "eval_every": 5}, "grid": {"train_fraction": [0.5]}})
    step, evaluation = efficiency.run_step_flops(spec)
    output = 16 * 7
    assert step == round(0.5 * 49) * 6 * output
    # An evaluation: the forward over all 49 pairs, plus the progress measures' own matmuls.
    assert evaluation > 49 * 2 * output
    assert efficiency.flops_per_run_step(spec) == step + evaluation / 5


def test_the_matmul_and_bandwidth_probes_give_positive_rates():
    efficiency = load("efficiency")
    torch.set_num_threads(1)
    assert efficiency.matmul_peak((64, 64, 64), seconds=0.05) > 0
    assert efficiency.matmul_peak((4, 8, 16, 32), seconds=0.05) > 0
    assert efficiency.elementwise_bandwidth(1000, seconds=0.05) > 0


def test_the_step_profile_names_the_matrix_products_and_counts_calls(capsys):
    step = load("step")
    spec = spec_from_dict({"name": "prof", "task": {"name": "toy_addition", "p": 5}, "model": {"name": "toy", "hidden": [8]},
                           "training": {"steps": 10, "eval_every": 5}})
    state = step.make_state(spec, grid.expand(spec), 2)
    step.profile_steps(state, 3, rows=40)
    out = capsys.readouterr().out
    header, *rows, rate = out.splitlines()
    assert "K = 2" in header and "in matrix products" in header and "op calls per step" in header
    assert rate.startswith("matrix products: ") and float(rate.split(" GFLOP/s")[0].split()[-1]) > 0
    ops = {line.split()[0]: line for line in rows[1:]}
    assert "aten::baddbmm" in ops  # the toy model's layers
    shares = [float(line.split()[1].rstrip("%")) for line in rows[1:]]
    assert 0 < sum(shares) <= 100.5 and shares == sorted(shares, reverse=True)
