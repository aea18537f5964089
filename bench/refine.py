"""Benchmark: boundary refinement against a dense grid over the same box (issue 18).

    .venv/bin/python bench/refine.py                             # quickstart box: 8 x 8 + 2 rounds against 32 x 32
    .venv/bin/python bench/refine.py --steps 1000 --gap 250      # shorter runs (the dense grid is slow on a CPU)

Both sweeps train Liu et al.'s toy model (sweeps/quickstart.yaml) over its repr-lr x decoder-lr
box on a local Ray: (a) a dense n x n grid, (b) a coarse m x m grid refined for ``--rounds``
rounds. It prints the runs and run-steps each used (run-steps: the logged rows' last step per
run, so early-stopped runs count what they trained) and the agreement of labels at the dense
grid's points, each dense point given the phase of the nearest refined run (distance in
decades along each axis, the seed's label; ties: the first run in the refined sweep's order).
Not a test: the numbers in the README come from this script. ``--steps`` and ``--gap`` shrink
both sweeps alike (the ratio is what counts); say so next to the numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grokgrid  # noqa: E402
from grokgrid.spec import load_spec  # noqa: E402


def spec_data(base: dict, name: str, n: int, steps: int | None, gap: int | None, refine: dict | None) -> dict:
    """The quickstart spec as a dict with an n x n log grid over its box (and a refine section)."""
    grid = dict(base["grid"])
    for axis in ("repr_lr", "decoder_lr"):
        lo, hi = min(grid[axis]), max(grid[axis])
        grid[axis] = {"logspace": [lo, hi, n]}
    data = {**base, "name": name, "grid": grid}
    data.pop("expect", None)
    if steps is not None:
        data["training"] = {**base["training"], "steps": steps}
    if gap is not None:
        data["phases"] = {**base["phases"], "gap": gap}
    data["resources"] = {**base.get("resources", {}), "pack_size": "auto"}
    if refine is not None:
        data["refine"] = refine
    return data


def run_steps(sweep) -> int:
    return int(sweep.metrics().groupby("run_id")["step"].max().sum())


def agreement(dense, refined) -> float:
    """The share of dense runs whose label equals that of the nearest refined run (log space)."""
    d = dense.runs.merge(dense.labels[["run_id", "phase"]], on="run_id")
    r = refined.runs.merge(refined.labels[["run_id", "phase"]], on="run_id")
    rx, ry = np.log10(r["repr_lr"].to_numpy(float)), np.log10(r["decoder_lr"].to_numpy(float))
    same = 0
    for x, y, phase in zip(np.log10(d["repr_lr"].to_numpy(float)), np.log10(d["decoder_lr"].to_numpy(float)), d["phase"]):
        nearest = int(np.argmin((rx - x) ** 2 + (ry - y) ** 2))
        same += r["phase"].iloc[nearest] == phase
    return same / len(d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "sweeps" / "quickstart.yaml"))
    parser.add_argument("--dense", type=int, default=32, help="values per axis of the dense grid")
    parser.add_argument("--coarse", type=int, default=8, help="values per axis of the grid refinement starts from")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="training steps of both sweeps (default: the spec's)")
    parser.add_argument("--gap", type=int, default=None, help="the phases' gap of both sweeps (default: the spec's)")
    parser.add_argument("--results", default=str(ROOT / "results" / "bench"))
    args = parser.parse_args()
    base = load_spec(args.spec).to_dict()
    outcomes = {}
    for name, n, refine in (("refine-bench-dense", args.dense, None),
                            ("refine-bench-refined", args.coarse, {"axes": ["repr_lr", "decoder_lr"], "rounds": args.rounds})):
        started = time.perf_counter()
        # The dense grid is kept when it is there already with this spec (its runs are done: nothing
        # trains); the refined sweep starts over, so that its rounds are this code's.
        sweep = grokgrid.run_sweep(spec_data(base, name, n, args.steps, args.gap, refine), results=args.results,
                                   overwrite=refine is not None, yes=True, reporter=grokgrid.Quiet())
        outcomes[name] = (sweep, time.perf_counter() - started)
    (dense, dense_wall), (refined, refined_wall) = outcomes["refine-bench-dense"], outcomes["refine-bench-refined"]
    steps_dense, steps_refined = run_steps(dense), run_steps(refined)
    share = agreement(dense, refined)
    steps = dense.spec.training.steps
    print(f"box: repr_lr x decoder_lr of {Path(args.spec).name}, {steps:,} steps a run, gap {dense.spec.phases.gap}")
    print(f"dense {args.dense} x {args.dense}: {len(dense.runs):,} runs, {steps_dense:,} run-steps "
          f"({dense_wall / 60:.1f} min here; a dense grid already trained is reused)")
    print(f"refined {args.coarse} x {args.coarse} + {args.rounds} rounds: {len(refined.runs):,} runs, "
          f"{steps_refined:,} run-steps, {refined_wall / 60:.1f} min")
    print(f"run-steps: {steps_refined / steps_dense:.1%} of the dense grid's; labels agree at {share:.1%} of its points "
          f"(target: <= 25% with >= 95%)")
    print(f"phases (dense): {dense.labels['phase'].value_counts().to_dict()}")
    if not math.isfinite(share):
        sys.exit(1)


if __name__ == "__main__":
    main()
