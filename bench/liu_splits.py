"""How much of its validation set a toy-addition split lets any network get right (Liu et al.).

Liu et al.'s ideal accuracy (their Acc-bar, ``ToyAddition.ideal_accuracy``): the share of the
validation pairs whose answer the training pairs determine through their parallelograms. By
Liu's effective theory a run whose split is below the phase threshold (0.9) reaches comprehension
or grokking under no learning rate, so a claim over a sweep's runs is capped by its splits before
anything trains.

For the training fractions and seeds of the Liu sweeps (``sweeps/liu_fraction.yaml``,
``sweeps/liu_fraction_paper.yaml``, ``sweeps/liu_lr.yaml``): the ideal val accuracy of each
seed's split (as the sweep draws it: ``task.split``), the number of runs that can reach 0.9, and
over many seeds the probability that a random split can.

    python bench/liu_splits.py                  # the three sweeps, 1,000 seeds per fraction
    python bench/liu_splits.py --seeds 200      # quicker
    python bench/liu_splits.py --results results   # and the trained runs beside their splits

With ``--results``, a sweep reproduced under that folder (``results/liu-fraction``) adds each
run's best val accuracy and phase, seed by seed: a run cannot beat its split's ideal accuracy
but by luck (an undetermined pair that happens to come out right).

A looser cap holds for any learner, not only under Liu's theory: a validation pair whose answer
(the sum i + j) no training pair has is one whose target the decoder never trains towards, so
it comes out right only by chance. The table gives the probability of that cap too. Below it,
each of the sweep's claims that asks for a share of generalising runs gets its ceiling: how many
of the runs it selects train on a split that can reach the threshold, the expected share over
random splits, and the chance that fresh random splits would let the claim pass at all.

No training: a few seconds per sweep at 1,000 seeds a fraction.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEPS = ("liu_fraction", "liu_fraction_paper", "liu_lr")
GENERALISED = frozenset({"comprehension", "grokking"})


def seen_answer_share(p: int, train_mask: torch.Tensor) -> float:
    """The share of a split's validation pairs whose answer (i + j) some training pair also has:
    any learner's cap, since a decoder gets no target for an answer it never trains on."""
    from grokgrid.tasks.toy_addition import ToyAddition

    toy = ToyAddition(p)
    sums = toy.targets()
    seen = torch.zeros(toy.n_classes, dtype=torch.bool)
    seen[sums[train_mask]] = True
    validation = ~train_mask
    return float(seen[sums[validation]].double().mean()) if bool(validation.any()) else 1.0


def at_least_probability(probabilities: list[float], k: int) -> float:
    """P(at least k of independent events happen), event i with probability probabilities[i]."""
    counts = [1.0]  # counts[j]: P(exactly j of the events so far)
    for p in probabilities:
        counts = [(counts[j] if j < len(counts) else 0.0) * (1 - p) + (counts[j - 1] * p if j else 0.0)
                  for j in range(len(counts) + 1)]
    return sum(counts[k:])


def claim_ceilings(spec, can: dict[float, float], own: dict[tuple[float, int], bool]) -> list[str]:
    """A line per claim of ``spec`` that asks for at least a share of generalising runs: how many
    of the runs it selects train on a split that can reach the threshold (``own``), the expected
    share over random splits (``can``: P per training fraction) and the chance that fresh random
    splits would let it pass at all."""
    import math

    import pandas as pd

    from grokgrid import expectations, grid, verdicts

    runs = pd.DataFrame([run.hyperparameters() for run in grid.expand(spec)])
    lines = []
    for claim in spec.expect:
        check = claim.check
        if not (isinstance(check, expectations.ShareCheck) and check.at_least and set(check.phases) <= GENERALISED):
            continue
        chosen = verdicts.select(runs, claim.where)
        n = len(chosen)
        needed = math.ceil(check.at_least * n - 1e-9)
        probabilities = [can[float(f)] for f in chosen.train_fraction]
        capable = sum(own[(float(f), int(s))] for f, s in zip(chosen.train_fraction, chosen.seed))
        lines.append(
            f"- {claim.claim!r} asks for >= {check.at_least:g} of {n} runs ({needed}): {capable} of this sweep's {n} "
            f"splits can reach {spec.phases.threshold:g}; on random splits the expected share is "
            f"{sum(probabilities) / n:.2f}, and {needed} or more of {n} can with probability "
            f"{at_least_probability(probabilities, needed):.2g}")
    return lines


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


def sweep_spec(name: str):
    """The loaded spec of a shipped toy-addition sweep."""
    from grokgrid.spec import load_spec

    spec = load_spec(ROOT / "sweeps" / f"{name}.yaml")
    if spec.task.name != "toy_addition":
        raise SystemExit(f"{name}: not a toy_addition sweep")
    return spec


def sweep_grid(name: str) -> tuple[object, list[float], list[int], float, str]:
    """(task spec, training fractions, seeds, phase threshold, results folder name) of a shipped
    toy-addition sweep."""
    return grid_of(sweep_spec(name))


def grid_of(spec) -> tuple[object, list[float], list[int], float, str]:
    """``sweep_grid``'s fields of a loaded spec."""
    return spec.task, list(spec.grid.train_fraction), list(spec.grid.seed), spec.phases.threshold, spec.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per fraction for the probability")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    parser.add_argument("--results", type=Path, help="the results root the sweeps were reproduced in (e.g. results)")
    args = parser.parse_args()
    for name in args.sweeps:
        spec = sweep_spec(name)
        task, fractions, seeds, threshold, folder = grid_of(spec)
        random = dataclasses.replace(task, split="random")
        trained = trained_runs(args.results, folder)
        n = task.n_examples
        print(f"\n{name} (p = {task.p}, {n} pairs, {task.split} splits; seeds {', '.join(map(str, seeds))}; "
              f"threshold {threshold:g})\n")
        extra = " | trained: best val acc, seed by seed | runs that generalised, seed by seed |" if trained else " |"
        print(f"| training fraction | training pairs | ideal val acc, seed by seed | runs that can reach {threshold:g} |"
              f" P(a random split can), {args.seeds:,} seeds | P(its unseen answers allow it) |"
              f" median ideal val acc, random splits{extra}")
        print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if trained else ""))
        can, own = {}, {}
        for fraction in fractions:
            ideal = [task.ideal_accuracy(fraction, s) for s in seeds]  # the split each run trains on
            own.update({(fraction, s): a >= threshold for s, a in zip(seeds, ideal)})
            many = [random.ideal_accuracy(fraction, s) for s in range(args.seeds)]
            seen = [seen_answer_share(task.p, random.split_mask(n, fraction, s)) for s in range(args.seeds)]
            can[fraction] = sum(a >= threshold for a in many) / len(many)
            row = (f"| {fraction:g} | {round(fraction * n)} | {' '.join(f'{a:.2f}' for a in ideal)} |"
                   f" {sum(a >= threshold for a in ideal)}/{len(ideal)} | {can[fraction]:.2f} |"
                   f" {sum(a >= threshold for a in seen) / len(seen):.2f} | {statistics.median(many):.2f} |")
            if trained:
                runs = [trained.get((fraction, s), (float("nan"), "-")) for s in seeds]
                row += f" {' '.join(f'{best:.2f}' for best, _ in runs)} | {' '.join(share for _, share in runs)} |"
            print(row, flush=True)
        ceilings = claim_ceilings(spec, can, own)
        if ceilings:
            print("\nIts claims on the share of runs that generalise, against what the splits allow:")
            print("\n".join(ceilings))


if __name__ == "__main__":
    main()
