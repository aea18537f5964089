"""What a run-step costs in FLOPs, and what this machine's matmul peak is (issue 19).

``run_step_flops`` counts the floating-point operations of one real training step and one
evaluation of a one-run pack with torch's FlopCounterMode (matmuls, batched matmuls and
convolutions, forward and backward, from the shapes the model actually runs; element-wise ops
are not counted, so this is the arithmetic a matmul unit could do, not all the work).
``matmul_peak`` times float32 matmuls on one thread, at a large square shape (the machine's best)
and at the given shapes (a pack's own, which are small: the gap shows what small matmuls lose).
bench/packs.py prints achieved GFLOP/s against both. ``elementwise_bandwidth`` times a float32
multiply over tensors of a given size: the bytes a second an elementwise pass (an activation,
its backward, an optimizer's pass) moves, which bounds everything outside the matmuls.
Used by benchmarks only; ``python bench/efficiency.py`` prints both probes on one thread.
"""

from __future__ import annotations

import argparse
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
    return flops / best_seconds(lambda: torch.matmul(a, b), seconds)


def elementwise_bandwidth(n_floats: int, seconds: float = 1.0) -> float:
    """Bytes a second of ``c = a * b`` over float32 tensors of ``n_floats`` (two read, one
    written: 12 bytes an element) on this thread, the best of repeated timings."""
    a, b, c = torch.randn(n_floats), torch.randn(n_floats), torch.empty(n_floats)
    return 12.0 * n_floats / best_seconds(lambda: torch.mul(a, b, out=c), seconds)


def best_seconds(operation, seconds: float) -> float:
    """Seconds one call of ``operation`` takes: the best mean over blocks of 5 calls, timed
    for about ``seconds`` (at least one block), so that load from elsewhere only slows the
    worse blocks."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        started = time.perf_counter()
        for _ in range(5):
            operation()
        best = min(best, (time.perf_counter() - started) / 5)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="This machine's fp32 matmul peak and elementwise bandwidth, one thread.")
    parser.add_argument("--seconds", type=float, default=1.0, help="time each probe this long (best kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"fp32 matmul at 1024^3: {matmul_peak(seconds=args.seconds) / 1e9:.1f} GFLOP/s")
    # From a toy pack's biases to an MLP pack's activations (8 x 1392 x 128 = 1.4 M floats) and
    # past the caches.
    for n in (40_000, 320_000, 1_425_408, 16_000_000):
        print(f"elementwise a * b over {n:>10,} floats ({12 * n / 2**20:6.1f} MiB moved): "
              f"{elementwise_bandwidth(n, args.seconds) / 1e9:.1f} GB/s")


if __name__ == "__main__":
    main()
