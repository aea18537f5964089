"""Benchmark: classify and render the report of a synthetic 10,000-run x 1,000-step sweep.

    .venv/bin/python bench/report.py                      # 10,000 runs x 1,000 steps (the target: render < 20 s)
    .venv/bin/python bench/report.py --runs 2000 --steps 300 --html /tmp/report.html

Prints the seconds spent building the tables, in ``phases.classify`` and in
``report.render_report`` (separately), and the HTML size. Not a pytest test: it takes ~half a
minute and gigabytes of memory; tests/test_report.py checks a scaled-down version.

The synthetic sweep is shaped like Liu et al.'s phase diagram, so that every phase and detail
label shows up: representation lr x decoder lr (log, 10 x 10), decoder weight decay as the
facet (5 values), 20 seeds. Train accuracy rises at t_train (sooner with a larger decoder lr),
val accuracy at t_val = t_train x a delay that grows as the representation lr shrinks and
weight decay shrinks it; past the budget a run is memorization or confusion; some runs plateau at
a middling val accuracy (semi-grokking), lose it again (ungrokking / misgrokking), or diverge.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.offline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grokgrid import phases, report  # noqa: E402

REPR_LRS = np.logspace(-5, -2, 10)
DECODER_LRS = np.logspace(-5, -2, 10)
DECODER_WDS = (0.0, 0.01, 0.1, 0.3, 1.0)


def synthetic_sweep(
    n_runs: int = 10_000,
    n_steps: int = 1_000,
    eval_every: int = 100,
    *,
    repr_lrs=REPR_LRS,
    decoder_lrs=DECODER_LRS,
    decoder_wds=DECODER_WDS,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, metrics) tables as store.read_runs / store.read_metrics return them."""
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(repr_lrs, decoder_lrs, decoder_wds, indexing="ij")).reshape(3, -1).T
    n_seeds = max(1, -(-n_runs // len(grid)))
    combos = np.repeat(grid, n_seeds, axis=0)[:n_runs]
    seeds = np.tile(np.arange(n_seeds), len(grid))[:n_runs]
    n = len(combos)
    repr_lr, decoder_lr, decoder_wd = combos.T
    runs = pd.DataFrame(
        {
            "run_id": [f"run{i:06d}" for i in range(n)],
            "pack_id": [f"pack{i // 64:04d}" for i in range(n)],
            "repr_lr": repr_lr,
            "decoder_lr": decoder_lr,
            "repr_wd": 0.0,
            "decoder_wd": decoder_wd,
            "init_scale": 1.0,
            "train_fraction": 0.5,
            "seed": seeds.astype(np.int64),
            "status": "done",
        }
    )

    budget = n_steps * eval_every
    x, y = np.log10(repr_lr), np.log10(decoder_lr)  # both in [-5, -2]
    noise = rng.normal(0, 0.12, size=(n, 3))
    log_t_train = 1.6 + 1.15 * (-2 - y) + noise[:, 0]  # 40 steps .. ~100k steps (confusion past the budget)
    log_delay = 0.15 + 0.75 * (-2 - x) - 1.2 * np.sqrt(decoder_wd) + noise[:, 1]
    log_t_val = log_t_train + np.maximum(log_delay, -0.3)
    # Plateau of val accuracy: full generalisation, except a band of semi-grokking runs.
    band = (np.abs(x + 3.9) < 0.35) & (decoder_wd <= 0.01)
    plateau = np.where(band, 0.55 + 0.1 * rng.random(n), 0.995)
    # Under the strongest weight decay, some generalising runs lose it again later: ungrokking
    # after a delayed rise, misgrokking after a prompt one.
    drop_at = np.where((decoder_wd >= 1.0) & (y > -3.5) & (rng.random(n) < 0.6), log_t_val + 0.6, np.inf)
    diverge_at = np.where((x > -2.2) & (y > -2.2), np.log10(budget) - 1.0 + noise[:, 2], np.inf)

    steps = np.arange(1, n_steps + 1) * eval_every  # (n_steps,)
    log_s = np.log10(steps)[None, :]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    train_acc = 0.05 + 0.95 * sig((log_s - log_t_train[:, None]) * 9)
    val_acc = 0.02 + (plateau[:, None] - 0.02) * sig((log_s - log_t_val[:, None]) * 9)
    dropped = log_s >= drop_at[:, None]
    val_acc = np.where(dropped, 0.25 + 0.1 * sig((log_s - drop_at[:, None]) * -9), val_acc)
    val_acc = np.clip(val_acc + rng.normal(0, 0.01, val_acc.shape), 0, 1)
    train_loss = np.exp(-9 * (train_acc - 0.05)) + 1e-7
    val_loss = np.exp(-4 * val_acc) + 0.01
    weight_norm = 20 + 15 * sig((log_s - log_t_train[:, None]) * 3) - 8 * np.sqrt(decoder_wd)[:, None] * val_acc
    bad = log_s >= diverge_at[:, None]
    train_loss = np.where(bad, np.nan, train_loss)
    val_loss = np.where(bad, np.nan, val_loss)
    metrics = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), n_steps),
            "step": np.tile(steps, n).astype(np.int64),
            "train_loss": train_loss.ravel(),
            "val_loss": val_loss.ravel(),
            "train_acc": train_acc.ravel(),
            "val_acc": val_acc.ravel(),
            "weight_norm": weight_norm.ravel(),
            "elapsed_s": np.tile(steps * 1e-3, n),
        }
    )
    return runs, metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000, help="logged steps per run")
    parser.add_argument("--facet", default="decoder_wd", help="facet hyperparameter ('' for none)")
    parser.add_argument("--html", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    runs, metrics = synthetic_sweep(args.runs, args.steps)
    built = time.perf_counter() - start
    print(f"tables: {len(runs):,} runs x {args.steps:,} steps = {len(metrics):,} metric rows ({built:.1f} s to build)")

    start = time.perf_counter()
    labels = phases.classify(metrics, phases.PhaseCriteria(gap=1000))
    classify_s = time.perf_counter() - start
    print(f"classify: {classify_s:.2f} s  {phases.phase_counts(labels)}  {phases.detail_counts(labels)}")

    start = time.perf_counter()
    text = report.render_report(
        runs, labels, metrics, title="synthetic 10k-run sweep", axes=("repr_lr", "decoder_lr"), facet=args.facet or None
    )
    render_s = time.perf_counter() - start
    size = len(text.encode("utf-8"))
    print(f"render_report: {render_s:.2f} s  HTML {size / 1e6:.1f} MB (plotly.js {len(plotly.offline.get_plotlyjs()) / 1e6:.1f} MB of it)")
    if args.html:
        args.html.write_text(text, encoding="utf-8")
        print(f"wrote {args.html}")


if __name__ == "__main__":
    main()
