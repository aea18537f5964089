"""Liu et al.'s toy model in grokgrid beside the authors' own code, seed by seed (liu_lr's claims).

For each seed: the ideal val accuracy of the seed's 45-of-55 split (Liu's Acc-bar, the share of
the validation pairs that the training pairs determine: ``ToyAddition.ideal_accuracy``), once for
grokgrid's split and once for the split the authors' code draws from the same seed, then the
phase of every (representation lr, decoder lr) cell: grokgrid's (``sweeps/liu_lr.yaml``'s setup,
trained in-process on one torch thread, no Ray) and, with ``--reference``, the authors'
(``toy/train_add.py`` of a clone of ejmichaud/grokking-squared, as their
``produce_figure_data.py`` calls it for Fig. 6a). Both are labelled by grokgrid's classifier
with liu_lr's criteria: val accuracy >= 0.9 less than 1,000 steps after train accuracy is
comprehension, later grokking.

    python bench/liu_fidelity.py                         # grokgrid, seeds 0-9, the comprehension band
    python bench/liu_fidelity.py --reference ../grokking-squared   # the authors' code beside it
    python bench/liu_fidelity.py --split determined      # grokgrid on splits that determine every pair
    python bench/liu_fidelity.py --split determined --reference ../grokking-squared --same-splits
                                                         # the authors' code on grokgrid's splits

grokgrid trains on random splits unless ``--split determined`` (liu_lr's own setting now), so
that both codes draw their splits alike. With ``--same-splits`` the authors' code trains on
grokgrid's split of each seed instead of drawing its own (their ``np.random.choice`` of the
training ids is answered with grokgrid's), so that the two codes differ only in how they train.

The default cells are liu_lr's comprehension band (decoder lr 1e-4 and 3.2e-4 under
representation lr 3.2e-3 and 1e-2). About 3 min for grokgrid's 40 runs and 14 min for the
authors' (21 s a run) on one core of the 2-core development machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BAND_REPR_LRS = (10**-2.5, 1e-2)
BAND_DECODER_LRS = (1e-4, 10**-3.5)
SHORT = {"comprehension": "comp", "grokking": "grok", "memorization": "mem", "confusion": "conf"}


def liu_lr_criteria():
    """liu_lr's phase criteria (threshold 0.9, gap 1,000), for both codes' runs."""
    from grokgrid import api
    from grokgrid.spec import load_spec

    return api.criteria(load_spec(ROOT / "sweeps" / "liu_lr.yaml"))


def curve_phase(train_acc, val_acc, criteria) -> str:
    """The phase of one run's per-step accuracies (step 0 first) by grokgrid's own classifier:
    the authors' runs are labelled by the rule that labels grokgrid's."""
    from grokgrid import phases

    return phases.classify_curve(range(len(train_acc)), train_acc, val_acc, criteria=criteria).phase


def grokgrid_split(seed: int, split: str = "random", fraction: float = 0.82):
    """The 45 training pairs grokgrid draws for ``seed`` (``task.split``: random or determined)."""
    from grokgrid.tasks.toy_addition_spec import ToyAdditionSpec

    task = ToyAdditionSpec(split=split)
    return task.split_mask(task.n_examples, fraction, seed)


def reference_split(seed: int, p: int = 10, train_num: int = 45, template_dim: int = 30):
    """The training pairs the authors' train_add draws for ``seed``: their templates first (one
    normal draw of [2p - 1, dim]), then np.random.choice of the training ids, pairs in the same
    i <= j order as grokgrid's."""
    import numpy as np
    import torch

    np.random.seed(seed)
    np.random.normal(0, 1, size=(2 * p - 1, template_dim))
    mask = torch.zeros(p * (p + 1) // 2, dtype=torch.bool)
    mask[torch.as_tensor(np.random.choice(len(mask), train_num, replace=False))] = True
    return mask


def ideal_accuracy(mask) -> float:
    from grokgrid.tasks.toy_addition import ToyAddition

    return ToyAddition(10).ideal_accuracy(mask)


def grokgrid_phases(seeds: list[int], repr_lrs: list[float], decoder_lrs: list[float], steps: int, split: str = "random") -> dict:
    """{(seed, repr_lr, decoder_lr): phase} from grokgrid (liu_lr's setup, ``task.split``
    as given), every run in one pack."""
    import pandas as pd
    import torch

    from grokgrid import grid, phases, train
    from grokgrid.spec import spec_from_dict
    from grokgrid.spec_yaml import read_spec_file

    torch.set_num_threads(1)
    data = read_spec_file(ROOT / "sweeps" / "liu_lr.yaml")
    data.pop("expect", None)
    data["training"]["steps"] = steps
    data["task"]["split"] = split
    data["grid"].update(repr_lr=list(repr_lrs), decoder_lr=list(decoder_lrs), seed=list(seeds))
    spec = spec_from_dict(data)
    runs = grid.expand(spec)
    rows = [row for batch in train.run_pack(spec, runs) for row in batch]
    labels = phases.classify(pd.DataFrame(rows), liu_lr_criteria()).set_index("run_id")
    return {(r.seed, r.repr_lr, r.decoder_lr): labels.loc[r.run_id, "phase"] for r in runs}


def reference_phase(train_add, seed: int, repr_lr: float, decoder_lr: float, steps: int, criteria, split=None) -> str:
    """The authors' run, as produce_figure_data.train_many_fig5a calls it (their defaults: p 10,
    45 training pairs, full batch, MSE onto 30-d templates, width 200); on ``split`` (a mask over
    the 55 pairs) instead of their own draw when given."""
    drawn = contextlib.nullcontext() if split is None else training_ids(split)
    with contextlib.redirect_stdout(io.StringIO()), drawn:
        result = train_add(eta_reprs=repr_lr, eta_dec=decoder_lr, steps=steps, eff_steps=1, seed=seed)
    return curve_phase(result["acc_train"], result["acc_test"], criteria)


@contextlib.contextmanager
def training_ids(split):
    """While open, numpy's draw of the training ids (``np.random.choice(55, 45, replace=False)``,
    the call train_add makes once) returns ``split``'s ids; every other call (their minibatch
    draws) is numpy's own. The draw still consumes numpy's stream, so what follows it is as
    without the patch."""
    import numpy as np

    original = np.random.choice
    ids = np.flatnonzero(np.asarray(split))

    def choice(a, size=None, replace=True, p=None):
        drawn = original(a, size, replace, p)
        if isinstance(a, int) and a == len(split) and size == len(ids) and not replace:
            return ids.copy()
        return drawn

    np.random.choice = choice
    try:
        yield
    finally:
        np.random.choice = original


def load_reference(path: Path):
    toy = path / "toy"
    if not (toy / "train_add.py").is_file():
        sys.exit(f"--reference: no toy/train_add.py under {path}; clone https://github.com/ejmichaud/grokking-squared there")
    sys.path.insert(0, str(toy))
    return importlib.import_module("train_add").train_add


def comprehension_share(phases_by_cell: dict, seeds: list[int]) -> str:
    chosen = [phase for (seed, *_), phase in phases_by_cell.items() if seed in seeds]
    if not chosen:
        return "-"
    return f"{sum(p == 'comprehension' for p in chosen)}/{len(chosen)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--repr-lrs", type=float, nargs="+", default=list(BAND_REPR_LRS))
    parser.add_argument("--decoder-lrs", type=float, nargs="+", default=list(BAND_DECODER_LRS))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--split", choices=("random", "determined"), default="random",
                        help="grokgrid's splits (the authors' code draws random ones)")
    parser.add_argument("--reference", type=Path, help="a clone of ejmichaud/grokking-squared: run the authors' code too")
    parser.add_argument("--same-splits", action="store_true",
                        help="the authors' code trains on grokgrid's split of each seed (with --reference)")
    args = parser.parse_args()
    if args.same_splits and not args.reference:
        parser.error("--same-splits needs --reference")
    cells = [(r, d) for r in args.repr_lrs for d in args.decoder_lrs]

    started = time.perf_counter()
    ours = grokgrid_phases(args.seeds, args.repr_lrs, args.decoder_lrs, args.steps, args.split)
    print(f"grokgrid: {len(ours)} runs in {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)
    theirs: dict = {}
    if args.reference:
        train_add, criteria = load_reference(args.reference), liu_lr_criteria()
        started = time.perf_counter()
        for seed in args.seeds:
            split = grokgrid_split(seed, args.split) if args.same_splits else None
            for r, d in cells:
                theirs[(seed, r, d)] = reference_phase(train_add, seed, r, d, args.steps, criteria, split)
        print(f"authors' code: {len(theirs)} runs in {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)

    names = " | ".join(f"repr {r:.2g}, dec {d:.2g}" for r, d in cells)
    print(f"| seed | who | split's ideal val acc | {names} |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in cells) + " |")
    ideal = {"grokgrid": {}, "authors": {}}
    for seed in args.seeds:
        theirs_split = grokgrid_split(seed, args.split) if args.same_splits else reference_split(seed)
        for who, mask, table in (("grokgrid", grokgrid_split(seed, args.split), ours), ("authors", theirs_split, theirs)):
            ideal[who][seed] = ideal_accuracy(mask)
            if who == "authors" and not theirs:
                continue
            shown = " | ".join(SHORT.get(table[(seed, r, d)], table[(seed, r, d)]) for r, d in cells)
            print(f"| {seed} | {who} | {ideal[who][seed]:.1f} | {shown} |")
    print()
    print("| who | comprehension, all seeds | seeds whose split determines every val pair (ideal 1.0) | their comprehension |")
    print("| --- | --- | --- | --- |")
    for who, table in (("grokgrid", ours), ("authors", theirs)):
        if not table:
            continue
        full = [s for s in args.seeds if ideal[who][s] == 1.0]
        print(f"| {who} | {comprehension_share(table, args.seeds)} | {len(full)} of {len(args.seeds)} | {comprehension_share(table, full)} |")


if __name__ == "__main__":
    main()
