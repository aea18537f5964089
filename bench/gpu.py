"""The GPU check (issue 19): does a pack of hundreds of transformers run, fit and beat one run at a
time on a CUDA device, and does a packed run still equal the run alone there?

    .venv/bin/python bench/gpu.py                 # about 2-4 minutes on one GPU
    .venv/bin/python bench/gpu.py --steps 50      # shorter

Without CUDA it says so in one line and exits 0, training nothing. With a GPU it trains the
transformer of sweeps/nanda_transformer.yaml (x + y mod 113, one layer, d 128, full batch) for
``--steps`` steps, no Ray (one process, the device's whole time): one run alone, then packs of
32, 128 and 256 runs (different seeds), and prints for each the run-steps per second, the peak
GPU memory and the achieved FLOP/s (plan.flops_per_run_step: 6 x parameters x examples a step,
plus the evaluations) against the device's matmul peak measured here (fp32, and TF32 where the
device has it). Last, a float64 pack of 4 against each run alone: PASS when every logged value
agrees to rel. 1e-6 (a GPU's reductions are not bit-reproducible across shapes). The final line
is ``gpu-check: <PASS|FAIL> <device> <best packed run-steps/s> <speed-up over one run>``.
``--fused`` measures the same with ``training.fused_optimizer: true``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--packs", default="32,128,256", help="pack sizes to try, comma-separated")
    parser.add_argument("--fused", action="store_true", help="with training.fused_optimizer: true (one kernel per distinct lr)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing trained")
        return 0
    from grokgrid import plan, train
    from grokgrid.spec import load_spec

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    loaded = load_spec(ROOT / "sweeps" / "nanda_transformer.yaml")
    base = dataclasses.replace(loaded, training=dataclasses.replace(loaded.training, fused_optimizer=args.fused))
    spec = dataclasses.replace(base, training=dataclasses.replace(base.training, steps=args.steps, eval_every=args.steps))
    sizes = [int(s) for s in args.packs.split(",") if s.strip()]
    runs = many_runs(spec, max(sizes))
    flops = plan.flops_per_run_step(spec, train.parameters_per_run(spec))
    peaks = matmul_peaks(torch, device)
    print(f"device: {name}; matmul peak " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))
    print(f"model: {base.model.name}, {train.parameters_per_run(spec):,} parameters a run, "
          f"{flops / 1e6:.1f} MFLOP a run-step (6 x parameters x examples, plus evaluation)")
    alone = throughput(torch, spec, runs[:1], device)
    print(f"one run: {alone[0]:,.0f} run-steps/s, peak memory {alone[1] / 2**20:,.0f} MiB")
    best = (0.0, 0)
    for size in sizes:
        try:
            rate, memory = throughput(torch, spec, runs[:size], device)
        except torch.cuda.OutOfMemoryError:
            print(f"pack of {size}: out of GPU memory")
            torch.cuda.empty_cache()
            continue
        achieved = rate * flops
        print(f"pack of {size}: {rate:,.0f} run-steps/s ({rate / alone[0]:.1f}x one run), peak memory "
              f"{memory / 2**20:,.0f} MiB, {achieved / 1e12:.2f} TFLOP/s = {achieved / peaks['fp32']:.0%} of the fp32 peak")
        best = max(best, (rate, size))
    same = packed_equals_alone(torch, base, device)
    print(f"packed == alone on the GPU (float64, rel. 1e-6): {'PASS' if same else 'FAIL'}")
    print(f"gpu-check: {'PASS' if same else 'FAIL'} {name.replace(' ', '_')} {best[0]:.0f} {best[0] / alone[0]:.2f}")
    return 0 if same else 1


def many_runs(spec, n: int):
    """n runs of the spec's recipe, differing in seed (all one shape: one pack)."""
    from grokgrid import grid

    return grid.expand(dataclasses.replace(spec, grid=dataclasses.replace(spec.grid, seed=tuple(range(n)))))[:n]


def throughput(torch, spec, runs, device) -> tuple[float, int]:
    """Run-steps per second over the spec's steps (after one warm-up pass) and peak memory."""
    from grokgrid import train

    for _ in train.run_pack(spec, runs[:1], device):  # CUDA context, kernels' first compilation
        pass
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in train.run_pack(spec, runs, device):
        pass
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return len(runs) * spec.training.steps / seconds, torch.cuda.max_memory_allocated(device)


def matmul_peaks(torch, device, n: int = 8192, repeats: int = 10) -> dict[str, float]:
    """FLOP/s of an n x n matmul in fp32 (TF32 off) and, where the device has it, TF32."""
    peaks = {}
    for label, tf32 in (("fp32", False), ("tf32", True)):
        if tf32 and torch.cuda.get_device_capability(device)[0] < 8:
            continue
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        a @ b
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        torch.cuda.synchronize()
        peaks[label] = 2 * n**3 * repeats / (time.perf_counter() - started)
    torch.backends.cuda.matmul.allow_tf32 = False
    return peaks


def packed_equals_alone(torch, base, device, n: int = 4, steps: int = 30) -> bool:
    from grokgrid import train

    spec = dataclasses.replace(base, training=dataclasses.replace(base.training, steps=steps, eval_every=10, precision="float64"))
    runs = many_runs(spec, n)
    packed = {(r["run_id"], r["step"]): r for rows in train.run_pack(spec, runs, device) for r in rows}
    for run in runs:
        for rows in train.run_pack(spec, [run], device):
            for row in rows:
                other = packed[(row["run_id"], row["step"])]
                for key in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm"):
                    if not math.isclose(row[key], other[key], rel_tol=1e-6, abs_tol=1e-9):
                        print(f"  differs: run {row['run_id']} step {row['step']} {key}: {row[key]!r} alone, {other[key]!r} packed")
                        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
