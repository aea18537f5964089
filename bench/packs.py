"""Benchmark: the same grid (a) one run per Ray Tune trial and (b) packed, on local Ray.

    .venv/bin/python bench/packs.py                     # the quickstart grid widened to 8 x 8 = 64 runs, 4000 steps
    .venv/bin/python bench/packs.py --spec sweeps/quickstart.yaml --steps 500

Prints, for both, wall time, run-steps per second (runs x steps / wall), their ratio, and Ray's
overhead as a share of wall time: 1 - (seconds the trials spent training) / (wall x slots),
the time the trial slots were not training (scheduling, trial start-up, reporting, idle tails).
At the end it prints each mode's achieved GFLOP/s against the fp32 matmul peak measured in the
same run (bench/efficiency.py), and one line a script can parse (``efficiency: key=value ...``).
It also prints the speed-up while training: run-steps per second of a trial slot's training
time, i.e. what packing gains before Ray's costs, which both modes pay. Not a test: timings
depend on the machine (numbers in the README come from this script).

On a shared machine one ratio can be off by 0.1 or more (the two modes ran minutes apart, under
different neighbours). ``--repeats N`` measures both modes N times, alternating which goes
first, and ends with the median of the N ratios and their range.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/efficiency.py

from grokgrid import grid, store  # noqa: E402
from grokgrid.spec import load_spec  # noqa: E402


def widen(spec, n_repr: int, n_decoder: int):
    """The spec's grid with n_repr x n_decoder log-spaced lrs over the same ranges."""

    def logspace(values, n):
        lo, hi = min(values), max(values)
        return tuple(float(f"{lo * (hi / lo) ** (i / max(n - 1, 1)):.6g}") for i in range(n))

    g = dataclasses.replace(spec.grid, repr_lr=logspace(spec.grid.repr_lr, n_repr), decoder_lr=logspace(spec.grid.decoder_lr, n_decoder))
    return dataclasses.replace(spec, grid=g)


def measure(spec, pack_size: int, slots: int) -> dict:
    from grokgrid import sweep

    runs = grid.expand(spec)
    packs = grid.pack(runs, pack_size)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        outcomes = sweep.launch(spec, Path(tmp), packs)
        wall = time.perf_counter() - started
        metrics = store.read_metrics(tmp)
    if not all(o.ok for o in outcomes):
        sys.exit(f"a trial failed: {[o.error for o in outcomes if not o.ok]}")
    # elapsed_s is measured from the start of each pack's training: the last row of a pack's
    # runs is when it finished training.
    pack_of = {r.run_id: p.pack_id for p in packs for r in p.runs}
    training = metrics.assign(pack=metrics["run_id"].map(pack_of)).groupby("pack")["elapsed_s"].max().sum()
    run_steps = len(runs) * spec.training.steps
    return {
        "pack_size": pack_size,
        "trials": len(packs),
        "wall_s": wall,
        "run_steps_per_s": run_steps / wall,
        "ray_overhead": max(0.0, 1 - training / (wall * slots)),
        # What one trial slot does while it trains: the speed-up packs give before Ray's costs
        # (a sweep's fixed start-up, several seconds here, weighs most on short sweeps).
        "training_run_steps_per_s": run_steps / training,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="sweeps/quickstart.yaml")
    parser.add_argument("--grid", default="8x8", help="repr x decoder lrs, e.g. 8x8 (64 runs)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the spec's)")
    parser.add_argument("--pack-size", default="auto", help="packed mode's pack size (auto: as grokgrid sweep)")
    parser.add_argument("--p", type=int, help="override task.p (e.g. 59 for the toy model at p = 59)")
    parser.add_argument("--repeats", type=int, default=1, help="measure both modes this many times; report the median ratio")
    parser.add_argument("--fused", action="store_true", help="both modes with training.fused_optimizer: true")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")

    from grokgrid import driver, sweep

    spec = load_spec(args.spec)
    n_repr, n_decoder = (int(v) for v in args.grid.split("x"))
    spec = widen(spec, n_repr, n_decoder)
    if args.p is not None:
        spec = dataclasses.replace(spec, task=dataclasses.replace(spec.task, p=args.p))
    if args.steps is not None:
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, steps=args.steps))
    if args.fused:
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, fused_optimizer=True))
    sweep.connect()
    slots = sweep.parallel_slots(spec.resources)
    n_runs = spec.grid.size()
    # The pack size `grokgrid sweep` would choose (driver.pack_size_for), or the one asked for.
    size = driver.pack_size_for(sweep, spec, n_runs, args.pack_size if args.pack_size == "auto" else int(args.pack_size))
    print(f"{spec.name}: {n_runs} runs x {spec.training.steps} steps, {slots} trial slots, device "
          f"{'gpu' if spec.resources.gpus_per_trial else 'cpu'}, optimizer "
          f"{'fused' if spec.training.fused_optimizer else 'foreach (default)'}", flush=True)
    ratios, training_ratios = [], []
    for repeat in range(args.repeats):
        # Alternate the order so that a machine getting slower (or faster) over the minutes of a
        # benchmark favours neither mode.
        order = [("one run per trial", 1), ("packed", size)]
        results = dict((label, measure(spec, k, slots)) for label, k in order[:: 1 if repeat % 2 == 0 else -1])
        if args.repeats > 1:
            print(f"repeat {repeat + 1} of {args.repeats}:")
        for label, _ in order:
            r = results[label]
            print(f"{label:>18}: pack size {r['pack_size']:>3}, {r['trials']:>3} trials, wall {r['wall_s']:7.1f} s, "
                  f"{r['run_steps_per_s']:9.0f} run-steps/s, Ray overhead {100 * r['ray_overhead']:4.1f}% of wall")
        packed, alone = results["packed"], results["one run per trial"]
        ratios.append(packed["run_steps_per_s"] / alone["run_steps_per_s"])
        training_ratios.append(packed["training_run_steps_per_s"] / alone["training_run_steps_per_s"])
        print(f"speed-up packed / per-run: {ratios[-1]:.2f}x (while training, per trial slot: "
              f"{alone['training_run_steps_per_s']:.0f} -> {packed['training_run_steps_per_s']:.0f} run-steps/s, "
              f"{training_ratios[-1]:.2f}x)", flush=True)
    if args.repeats > 1:
        print(f"median speed-up over {args.repeats} repeats: {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}x-{max(ratios):.2f}x; while training {statistics.median(training_ratios):.2f}x)")
    print_efficiency(spec, size, slots, results)


def print_efficiency(spec, pack_size: int, slots: int, results: dict) -> None:
    """Achieved GFLOP/s of each mode (the last repeat's) against the matmul peak measured now:
    at a large square shape (the machine's best, one thread a slot) and at the pack's own largest
    matmul (bench/efficiency.py says how both are counted). Ends with one line a script can parse."""
    import torch

    from efficiency import matmul_peak, run_step_flops

    from grokgrid import train

    torch.set_num_threads(1)  # a trial slot's torch runs one thread
    step, evaluation = run_step_flops(spec)
    flops = step + evaluation / spec.training.eval_every
    state = train.build_pack(spec, grid.expand(spec)[:1])
    examples = int(state.train_mask[0].sum()) if spec.training.batch_size is None else spec.training.batch_size
    weight = max((p for p in state.model.parameters() if p.dim() == 3), key=lambda p: p.shape[1] * p.shape[2], default=None)
    best = matmul_peak()
    shape = (pack_size, examples, weight.shape[1], weight.shape[2]) if weight is not None else None
    at_pack = matmul_peak(shape) if shape else float("nan")
    print(f"FLOPs a run-step: {step / 1e6:.2f} M to train + {evaluation / 1e6:.2f} M per evaluation / {spec.training.eval_every} "
          f"= {flops / 1e6:.2f} M (torch FlopCounterMode: matmuls forward and backward, from the shapes run)")
    print(f"fp32 matmul peak, one thread: {best / 1e9:.1f} GFLOP/s at 1024^3; {at_pack / 1e9:.1f} GFLOP/s at the pack's "
          f"largest matmul {shape} (x {slots} slots: {best * slots / 1e9:.1f} GFLOP/s for the machine)")
    line = {"slots": slots, "peak_gflops_per_slot": round(best / 1e9, 1), "pack_shape_gflops": round(at_pack / 1e9, 1)}
    for label, key in (("one run per trial", "alone"), ("packed", "packed")):
        achieved = results[label]["run_steps_per_s"] * flops
        share = achieved / (best * slots)
        print(f"{label:>18}: {achieved / 1e9:6.2f} GFLOP/s end to end = {share:.1%} of the machine's peak")
        line[f"{key}_gflops"], line[f"{key}_share"] = round(achieved / 1e9, 2), round(share, 4)
    print("efficiency: " + " ".join(f"{k}={v}" for k, v in line.items()))


if __name__ == "__main__":
    main()
