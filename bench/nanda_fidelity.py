"""Nanda et al.'s modular addition at their settings, against their saved runs (issue 21).

x + y mod 113, 1-layer transformer (d_model 128, 4 heads, d_mlp 512, no LayerNorm) on [x, y, =],
full batch, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1 on every parameter, 10 warm-up
steps, seed 0; one run per fraction, trained without Ray on one torch thread. Prints the first
logged step with val loss < 1e-2 beside the epochs their saved runs took to reach test loss
< 1e-2 (one full-batch step is one epoch), and the ratio.

    python bench/nanda_fidelity.py --fractions 0.7 0.5             # init: nanda (their init)
    python bench/nanda_fidelity.py --fractions 0.7 --init torch    # PyTorch's defaults

About 0.36 s per step at fraction 0.7 on one core of the 2-core development machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Nanda et al.'s saved runs (neelnanda-io/Grokking, saved_runs/mod_addition_frac_train_sweep.pth):
# epochs until test loss < 1e-2, by training fraction.
REFERENCE = {0.95: 279, 0.9: 387, 0.8: 439, 0.7: 343, 0.6: 556, 0.5: 1109, 0.4: 3324, 0.3: 8258, 0.28: 15612, 0.25: 22177}


def first_step_below(init: str, fraction: float, max_steps: int, eval_every: int, threshold: float = 1e-2) -> tuple[int | None, float]:
    import torch

    from grokgrid import grid, train
    from grokgrid.spec import spec_from_dict

    torch.set_num_threads(1)
    spec = spec_from_dict({
        "name": "nanda-fidelity",
        "task": {"name": "modular", "p": 113, "op": "add", "loss": "ce"},
        "model": {"name": "transformer", "n_layers": 1, "d_model": 128, "n_heads": 4, "d_mlp": 512, "layer_norm": False, "init": init},
        "training": {"steps": max_steps, "eval_every": eval_every, "optimizer": "adamw", "betas": [0.9, 0.98],
                     "warmup_steps": 10, "precision": "float32"},
        "grid": {"repr_lr": [1e-3], "decoder_lr": [1e-3], "repr_wd": [1.0], "decoder_wd": [1.0], "train_fraction": [fraction], "seed": [0]},
    })
    started = time.perf_counter()
    for rows in train.run_pack(spec, grid.expand(spec)):
        if rows[0]["val_loss"] < threshold:
            return rows[0]["step"], time.perf_counter() - started
    return None, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--init", choices=("nanda", "torch"), default="nanda")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--max-ratio", type=float, default=3.0, help="stop a run at this multiple of the reference")
    args = parser.parse_args()
    print("| fraction | reference epochs | grokgrid first logged step with val loss < 1e-2 | ratio | wall |")
    print("| --- | --- | --- | --- | --- |")
    for fraction in args.fractions:
        reference = REFERENCE.get(fraction)
        if reference is None:
            sys.exit(f"no reference run at fraction {fraction}; use one of {', '.join(map(str, REFERENCE))}")
        budget = int(args.max_ratio * reference)
        step, wall = first_step_below(args.init, fraction, budget, args.eval_every)
        shown = f"{step} (logged every {args.eval_every})" if step is not None else f"not by {budget}"
        ratio = f"{step / reference:.2f}x" if step is not None else f"> {args.max_ratio:g}x"
        print(f"| {fraction:g} | {reference} | {shown} | {ratio} | {wall / 60:.1f} min |", flush=True)


if __name__ == "__main__":
    main()
