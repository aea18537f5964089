"""Benchmark: early stop on a decided phase, against the same sweep trained to the end (issue 18).

    .venv/bin/python bench/early_stop.py                         # sweeps/quickstart.yaml, patience 5
    .venv/bin/python bench/early_stop.py --rounds 1              # on a refined diagram (one round)

A run leaves its pack once train and val accuracy have been >= the phases' threshold for
``--patience`` logged steps: both its timings, hence its phase, are then fixed (only a later
divergence, or a detail label such as misgrokking, could still change). The script trains the
sweep without and with that rule on a local Ray and prints the run-steps each used and how many
runs got the same phase (and detail) in both; runs are matched by their hyperparameters, since
the rule is part of a run's recipe (so of its id). Not a test: the README's numbers come from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grokgrid  # noqa: E402
from grokgrid.spec import HYPERPARAMETERS, load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "sweeps" / "quickstart.yaml"))
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=0, help="refinement rounds on repr_lr x decoder_lr (0: none)")
    parser.add_argument("--results", default=str(ROOT / "results" / "bench"))
    args = parser.parse_args()
    base = load_spec(args.spec).to_dict()
    base.pop("expect", None)
    threshold = base["phases"]["threshold"]
    sweeps = {}
    for name, rule in (("early-stop-off", None), ("early-stop-on", {"threshold": threshold, "patience": args.patience})):
        data = {**base, "name": name, "training": {**base["training"], "early_stop": rule}}
        if args.rounds:
            data["refine"] = {"axes": ["repr_lr", "decoder_lr"], "rounds": args.rounds}
        sweeps[name] = grokgrid.run_sweep(data, results=args.results, overwrite=True, yes=True, reporter=grokgrid.Quiet())
    tables = {}
    for name, sweep in sweeps.items():
        steps = sweep.metrics().groupby("run_id")["step"].max().rename("run_steps")
        tables[name] = sweep.runs.merge(sweep.labels[["run_id", "phase", "detail"]], on="run_id").join(steps, on="run_id")
    keys = [h for h in HYPERPARAMETERS]
    both = tables["early-stop-off"].merge(tables["early-stop-on"], on=keys, suffixes=("_off", "_on"))
    same_phase = int((both["phase_off"] == both["phase_on"]).sum())
    same_detail = int((both["detail_off"].fillna("") == both["detail_on"].fillna("")).sum())
    off, on = int(both["run_steps_off"].sum()), int(both["run_steps_on"].sum())
    print(f"{Path(args.spec).name}{f' + {args.rounds} refinement round(s)' if args.rounds else ''}: "
          f"{len(both)} runs matched ({len(tables['early-stop-off'])} without, {len(tables['early-stop-on'])} with early stop)")
    print(f"early stop (threshold {threshold:g}, patience {args.patience}): {on:,} run-steps against {off:,} "
          f"({1 - on / off:.0%} saved)")
    print(f"same phase: {same_phase}/{len(both)}; same detail: {same_detail}/{len(both)}")
    for row in both[both["phase_off"] != both["phase_on"]].itertuples():
        print(f"  differs: repr_lr {row.repr_lr:g}, decoder_lr {row.decoder_lr:g}: {row.phase_off} without, {row.phase_on} with")


if __name__ == "__main__":
    main()
