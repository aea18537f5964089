"""How much of its validation set a toy-addition split lets any network get right (Liu et al.).

Liu et al.'s ideal accuracy (their Acc-bar, ``ToyAddition.ideal_accuracy``): the share of the
validation pairs whose answer the training pairs determine through their parallelograms. A run
whose split is below the phase threshold (0.9) cannot reach comprehension or grokking under any
learning rates, so a claim over a sweep's runs is capped by its splits before anything trains.

For the training fractions and seeds of the Liu sweeps (``sweeps/liu_fraction.yaml``,
``sweeps/liu_lr.yaml``): each seed's ideal val accuracy, the number of runs that can reach 0.9,
and over many seeds the probability that a split can.

    python bench/liu_splits.py                  # both sweeps, 1,000 seeds per fraction
    python bench/liu_splits.py --seeds 200      # quicker

No training: about 20 s for 1,000 seeds at each of liu_fraction's 8 fractions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEPS = ("liu_fraction", "liu_lr")


def split_ideal_accuracy(p: int, fraction: float, seed: int) -> float:
    """The ideal val accuracy of the split grokgrid draws for (fraction, seed)."""
    from grokgrid.seeding import split_mask
    from grokgrid.tasks.toy_addition import ToyAddition

    toy = ToyAddition(p)
    return toy.ideal_accuracy(split_mask(p * (p + 1) // 2, fraction, seed))


def sweep_grid(name: str) -> tuple[int, list[float], list[int], float]:
    """(p, training fractions, seeds, phase threshold) of a shipped toy-addition sweep."""
    from grokgrid.spec import load_spec
    from grokgrid.spec_yaml import read_spec_file

    spec = load_spec(ROOT / "sweeps" / f"{name}.yaml")
    grid = read_spec_file(ROOT / "sweeps" / f"{name}.yaml")["grid"]
    if spec.task.name != "toy_addition":
        raise SystemExit(f"{name}: not a toy_addition sweep")
    return spec.task.p, [float(f) for f in grid["train_fraction"]], [int(s) for s in grid["seed"]], spec.phases.threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per fraction for the probability")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    args = parser.parse_args()
    for name in args.sweeps:
        p, fractions, seeds, threshold = sweep_grid(name)
        n = p * (p + 1) // 2
        print(f"\n{name} (p = {p}, {n} pairs; seeds {', '.join(map(str, seeds))}; threshold {threshold:g})\n")
        print(f"| training fraction | training pairs | ideal val acc, seed by seed | runs that can reach {threshold:g} |"
              f" P(a split can), {args.seeds:,} seeds | median ideal val acc |")
        print("| --- | --- | --- | --- | --- | --- |")
        for fraction in fractions:
            own = [split_ideal_accuracy(p, fraction, s) for s in seeds]
            many = [split_ideal_accuracy(p, fraction, s) for s in range(args.seeds)]
            can = sum(a >= threshold for a in own)
            share = sum(a >= threshold for a in many) / len(many)
            print(f"| {fraction:g} | {round(fraction * n)} | {' '.join(f'{a:.2f}' for a in own)} | {can}/{len(own)} |"
                  f" {share:.2f} | {statistics.median(many):.2f} |", flush=True)


if __name__ == "__main__":
    main()
