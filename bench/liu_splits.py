"""How much of its validation set a toy-addition split lets any network get right (Liu et al.).

Liu et al.'s ideal accuracy (their Acc-bar, ``ToyAddition.ideal_accuracy``): the share of the
validation pairs whose answer the training pairs determine through their parallelograms. By
Liu's effective theory a run whose split is below the phase threshold (0.9) reaches comprehension
or grokking under no learning rate, so a claim over a sweep's runs is capped by its splits before
anything trains.

For the training fractions and seeds of the Liu sweeps (``sweeps/liu_fraction.yaml``,
``sweeps/liu_lr.yaml``): the ideal val accuracy of each seed's split (as the sweep draws it:
``task.split``), the number of runs that can reach 0.9, and over many seeds the probability that
a random split can.

    python bench/liu_splits.py                  # both sweeps, 1,000 seeds per fraction
    python bench/liu_splits.py --seeds 200      # quicker
    python bench/liu_splits.py --results results   # and the trained runs beside their splits

With ``--results``, a sweep reproduced under that folder (``results/liu-fraction``) adds each
run's best val accuracy and phase, seed by seed: a run cannot beat its split's ideal accuracy
but by luck (an undetermined pair that happens to come out right).

No training: about 20 s for 1,000 seeds at each of liu_fraction's 8 fractions.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEPS = ("liu_fraction", "liu_lr")


def trained_runs(results: Path | None, sweep_name: str) -> dict:
    """{(train_fraction, seed): (best val accuracy of its runs, "generalised/runs")} of a
    reproduced sweep (generalised: comprehension or grokking); {} when it is not there."""
    if results is None or not (results / sweep_name).is_dir():
        return {}
    import grokgrid

    sweep = grokgrid.open(results / sweep_name)
    runs = sweep.runs.merge(sweep.labels, on="run_id")
    runs["generalised"] = runs.phase.isin(["comprehension", "grokking"])
    return {
        (float(fraction), int(seed)): (float(group.max_val_acc.max()), f"{int(group.generalised.sum())}/{len(group)}")
        for (fraction, seed), group in runs.groupby(["train_fraction", "seed"])
    }


def sweep_grid(name: str) -> tuple[object, list[float], list[int], float, str]:
    """(task spec, training fractions, seeds, phase threshold, results folder name) of a shipped
    toy-addition sweep."""
    from grokgrid.spec import load_spec

    spec = load_spec(ROOT / "sweeps" / f"{name}.yaml")
    if spec.task.name != "toy_addition":
        raise SystemExit(f"{name}: not a toy_addition sweep")
    return spec.task, list(spec.grid.train_fraction), list(spec.grid.seed), spec.phases.threshold, spec.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per fraction for the probability")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    parser.add_argument("--results", type=Path, help="the results root the sweeps were reproduced in (e.g. results)")
    args = parser.parse_args()
    for name in args.sweeps:
        task, fractions, seeds, threshold, folder = sweep_grid(name)
        random = dataclasses.replace(task, split="random")
        trained = trained_runs(args.results, folder)
        n = task.n_examples
        print(f"\n{name} (p = {task.p}, {n} pairs, {task.split} splits; seeds {', '.join(map(str, seeds))}; "
              f"threshold {threshold:g})\n")
        extra = " | trained: best val acc, seed by seed | runs that generalised, seed by seed |" if trained else " |"
        print(f"| training fraction | training pairs | ideal val acc, seed by seed | runs that can reach {threshold:g} |"
              f" P(a random split can), {args.seeds:,} seeds | median ideal val acc, random splits{extra}")
        print("| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if trained else ""))
        for fraction in fractions:
            own = [task.ideal_accuracy(fraction, s) for s in seeds]  # the split each run trains on
            many = [random.ideal_accuracy(fraction, s) for s in range(args.seeds)]
            can = sum(a >= threshold for a in own)
            share = sum(a >= threshold for a in many) / len(many)
            row = (f"| {fraction:g} | {round(fraction * n)} | {' '.join(f'{a:.2f}' for a in own)} | {can}/{len(own)} |"
                   f" {share:.2f} | {statistics.median(many):.2f} |")
            if trained:
                runs = [trained.get((fraction, s), (float("nan"), "-")) for s in seeds]
                row += f" {' '.join(f'{best:.2f}' for best, _ in runs)} | {' '.join(share for _, share in runs)} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
