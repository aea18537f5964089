"""What a run-step costs in FLOPs, and what this machine's matmul peak is (issue 19).

``run_step_flops`` counts the floating-point operations of one real training step and one
evaluation of a one-run pack with torch's FlopCounterMode (matmuls, batched matmuls and
convolutions, forward and backward, from the shapes the model actually runs; element-wise ops
are not counted, so this is the arithmetic a matmul unit could do, not all the work).
``matmul_peak`` times float32 matmuls on one thread, at a large square shape (the machine's best)
and at the given shapes (a pack's own, which are small: the gap shows what small matmuls lose).
bench/packs.py prints achieved GFLOP/s against both. Used by benchmarks only.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode


def run_step_flops(spec) -> tuple[float, float]:
    """(FLOPs of one training step, FLOPs of one evaluation) of one run of ``spec``."""
    from grokgrid import grid, train

    run = grid.expand(spec)[0]
    state = train.build_pack(spec, [run])
    with FlopCounterMode(display=False) as counter:
        train.train_step(state)
    step = float(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        train.evaluate(state)
    return step, float(counter.get_total_flops())


def flops_per_run_step(spec) -> float:
    """A run-step's FLOPs with the evaluations spread over the steps (one every eval_every)."""
    step, evaluation = run_step_flops(spec)
    return step + evaluation / spec.training.eval_every


def matmul_peak(shape: Sequence[int] = (1024, 1024, 1024), seconds: float = 1.0) -> float:
    """FLOP/s of float32 matmuls (m, k) @ (k, n) on this thread, the best of repeated timings;
    a leading batch dimension (b, m, k, n) times batched matmuls."""
    *batch, m, k, n = shape
    a = torch.randn(*batch, m, k)
    b = torch.randn(*batch, k, n)
    flops = 2.0 * m * k * n * (batch[0] if batch else 1)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        started = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b)
        best = min(best, (time.perf_counter() - started) / 5)
    return flops / best
