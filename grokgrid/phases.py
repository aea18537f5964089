"""Phase classifier: turn each run's accuracy/loss curves into a phase label and its timings.

This is the step between the metrics table and the report (DESIGN.md sections 1 and 4): it reads
per-step metrics (``store.METRICS_SCHEMA``) and produces one row per run with exactly the columns
of ``store.LABELS_SCHEMA``. It is pure: no torch, no Ray, no I/O, so it runs on a laptop and is
cheap to test.

The phases follow Liu et al. 2022 ("Towards Understanding Grokking", Table 1) with threshold
``T`` (default 0.9), gap ``G`` (default 1000) and an optional step budget ``B``:

* only logged steps ``<= B`` count (when a budget is set);
* ``t_train`` / ``t_val`` = first logged step whose train / val accuracy is ``>= T`` (None if never);
* comprehension: both reached and ``t_val - t_train < G`` (a negative gap, val first, counts here);
* grokking: both reached and ``t_val - t_train >= G`` (a gap of exactly ``G`` is grokking);
* memorization: train reached, val not;
* confusion: train not reached. Liu's notebook silently calls "val reached, train not"
  comprehension; we call it confusion and set ``val_before_train`` so that it can be told apart;
* diverged (our addition): a non-finite (NaN or +-inf) train or val loss at a step within the
  budget. Accuracies logged at or after that step come from broken weights, so ``t_train`` and
  ``t_val`` only look at the steps before it.

A NaN accuracy (e.g. an eval that was not run) simply does not reach the threshold at that step
(``NaN >= T`` is False); it is not a divergence by itself. ``max_val_acc`` ignores NaNs.

``classify_curve`` labels one run; ``classify`` labels a whole metrics frame at once, vectorised
over runs with numpy (10k runs x 1k steps in a few seconds). Both go through the same code, so
they always agree.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

PHASES = ("comprehension", "grokking", "memorization", "confusion", "diverged")

# Okabe-Ito palette (distinguishable under the common colour-vision deficiencies). The report
# colours phase-diagram cells with these, so they are fixed here rather than picked per plot.
PHASE_COLORS: dict[str, str] = {
    "comprehension": "#009E73",  # bluish green: generalised promptly
    "grokking": "#E69F00",  # orange: generalised late
    "memorization": "#0072B2",  # blue: fits train, never val
    "confusion": "#CC79A7",  # reddish purple: never fits train
    "diverged": "#000000",  # black: NaN/inf loss
}

# The columns of store.LABELS_SCHEMA, in order. Repeated here (not imported) because phases.py
# must not need pyarrow; tests check that the two stay equal.
LABEL_COLUMNS = (
    "run_id",
    "phase",
    "reason",
    "t_train",
    "t_val",
    "gap",
    "final_train_acc",
    "final_val_acc",
    "max_val_acc",
    "last_step",
    "val_before_train",
)
_INT_COLUMNS = ("t_train", "t_val", "gap", "last_step")
_FLOAT_COLUMNS = ("final_train_acc", "final_val_acc", "max_val_acc")

# "Never happened" / "no rows" markers for the per-run min / max step reductions (they need numbers).
_NEVER = np.iinfo(np.int64).max
_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class PhaseCriteria:
    """Thresholds that define the phases (Liu et al.: threshold 0.9, gap 1e3, budget 1e5)."""

    threshold: float = 0.9
    gap: int = 1000
    budget: int | None = None

    def __post_init__(self) -> None:
        if not (_is_real(self.threshold) and 0.0 < self.threshold <= 1.0):  # False for NaN too
            raise ValueError(f"threshold must be a number in (0, 1], got {self.threshold!r}")
        if not (_is_int(self.gap) and self.gap >= 0):
            raise ValueError(f"gap must be an integer >= 0, got {self.gap!r}")
        if self.budget is not None and not (_is_int(self.budget) and self.budget > 0):
            raise ValueError(f"budget must be None or an integer > 0, got {self.budget!r}")


def _is_real(x: object) -> bool:
    # bool is an int subclass; a spec saying `threshold: true` is a mistake, not 1.0.
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class Label:
    """One run's phase and timings: the columns of store.LABELS_SCHEMA except run_id.

    phase             one of PHASES
    reason            a short sentence with the numbers behind the phase
    t_train, t_val    first logged step with train / val accuracy >= threshold (None: never)
    gap               t_val - t_train when both were reached (negative if val came first), else None
    final_*_acc       accuracy at the last logged step within the budget (NaN if none or not logged)
    max_val_acc       highest val accuracy within the budget, NaNs skipped (NaN if none)
    last_step         last logged step within the budget (None: no steps)
    val_before_train  val reached the threshold and train had not (yet, or ever) at that step
    """

    phase: str
    reason: str
    t_train: int | None
    t_val: int | None
    gap: int | None
    final_train_acc: float
    final_val_acc: float
    max_val_acc: float
    last_step: int | None
    val_before_train: bool


# ----------------------------------------------------------------------------- core (vectorised)
#
# Every per-run quantity is a reduction over that run's rows (a min, a max, a NaN-skipping max),
# so rows never need sorting: numpy's unbuffered ufunc.at reduces 10M unsorted rows into 10k runs
# in ~50 ms, while sorting them by (run, step) costs seconds. "Unsorted input" is thus free.


def _group_min(values: np.ndarray, codes: np.ndarray, n_groups: int, init: int) -> np.ndarray:
    out = np.full(n_groups, init, dtype=values.dtype)
    np.minimum.at(out, codes, values)
    return out


def _group_max(values: np.ndarray, codes: np.ndarray, n_groups: int, init: int) -> np.ndarray:
    out = np.full(n_groups, init, dtype=values.dtype)
    np.maximum.at(out, codes, values)
    return out


def _float_array(values: object, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n)  # no loss logged: nothing can diverge
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _label_table(
    codes: np.ndarray,
    n_groups: int,
    steps: np.ndarray,
    train_acc: np.ndarray,
    val_acc: np.ndarray,
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    criteria: PhaseCriteria,
) -> dict[str, np.ndarray]:
    """Label ``n_groups`` runs given each row's run code (0..n_groups-1), rows in any order.

    Returns one array per LABELS field (no run_id, no reason) plus ``<name>_ok`` masks for the
    nullable integer fields and what the reasons need (``div_row``, ``had_rows``...).
    """
    had_rows = np.bincount(codes, minlength=n_groups) > 0
    if criteria.budget is not None:
        keep = steps <= criteria.budget
        codes, steps = codes[keep], steps[keep]
        train_acc, val_acc, train_loss, val_loss = (a[keep] for a in (train_acc, val_acc, train_loss, val_loss))
    rows = np.arange(steps.size, dtype=np.int64)
    has_rows = np.bincount(codes, minlength=n_groups) > 0

    # Last logged step, and its row (the last such row in input order if a step is repeated).
    last_step = _group_max(steps, codes, n_groups, _MIN)
    last_row = _group_max(np.where(steps == last_step[codes], rows, -1), codes, n_groups, -1)

    # Divergence first: accuracies logged at or after it are not trusted for t_train/t_val.
    bad_train = ~np.isfinite(train_loss)
    bad_val = ~np.isfinite(val_loss)
    bad = bad_train | bad_val
    div_step = _group_min(np.where(bad, steps, _NEVER), codes, n_groups, _NEVER)
    div_row = _group_min(np.where(bad & (steps == div_step[codes]), rows, _NEVER), codes, n_groups, _NEVER)
    trusted = steps < div_step[codes]

    # NaN >= threshold is False, so a NaN accuracy never counts as reaching it.
    thr = criteria.threshold
    t_train = _group_min(np.where((train_acc >= thr) & trusted, steps, _NEVER), codes, n_groups, _NEVER)
    t_val = _group_min(np.where((val_acc >= thr) & trusted, steps, _NEVER), codes, n_groups, _NEVER)
    train_ok = t_train != _NEVER
    val_ok = t_val != _NEVER
    both = train_ok & val_ok
    gap = np.zeros(n_groups, dtype=np.int64)
    gap[both] = t_val[both] - t_train[both]  # masked: _NEVER minus a step could overflow

    # A run with no rows reaches nothing, so it falls through to confusion.
    phase = np.select(
        [div_step != _NEVER, both & (gap >= criteria.gap), both, train_ok],
        ["diverged", "grokking", "comprehension", "memorization"],
        "confusion",
    ).astype(object)

    safe_last = np.maximum(last_row, 0)  # index 0 is a placeholder for runs with no rows
    max_val = np.full(n_groups, np.nan)
    np.fmax.at(max_val, codes, val_acc)  # fmax skips NaN; a run of only NaNs stays NaN

    def at_last(values: np.ndarray) -> np.ndarray:
        return np.where(has_rows, values[safe_last], np.nan) if values.size else np.full(n_groups, np.nan)

    return {
        "phase": phase,
        "t_train": t_train,
        "t_train_ok": train_ok,
        "t_val": t_val,
        "t_val_ok": val_ok,
        "gap": gap,
        "gap_ok": both,
        "final_train_acc": at_last(train_acc),
        "final_val_acc": at_last(val_acc),
        "max_val_acc": max_val,
        "last_step": np.where(has_rows, last_step, 0),
        "last_step_ok": has_rows,
        "val_before_train": val_ok & (~train_ok | (t_val < t_train)),
        # For the reasons only:
        "had_rows": had_rows,
        "div_step": div_step,
        "div_row": div_row,
        "bad_train": bad_train,
        "bad_val": bad_val,
        "train_loss": train_loss,
        "val_loss": val_loss,
    }


# ----------------------------------------------------------------------------- reasons


def _divergence_text(cols: Mapping[str, np.ndarray], g: int) -> str:
    row = int(cols["div_row"][g])
    parts = []
    if cols["bad_train"][row]:
        parts.append(f"train_loss={cols['train_loss'][row]}")
    if cols["bad_val"][row]:
        parts.append(f"val_loss={cols['val_loss'][row]}")
    return f"loss diverged at step {int(cols['div_step'][g])} ({', '.join(parts)})"


def _reason(cols: Mapping[str, np.ndarray], g: int, criteria: PhaseCriteria) -> str:
    """A short sentence, with the numbers, saying why run ``g`` got its phase."""
    if not cols["last_step_ok"][g]:
        if cols["had_rows"][g] and criteria.budget is not None:
            return f"no logged steps within budget {criteria.budget}"
        return "no logged steps"
    phase = cols["phase"][g]
    thr = f"{criteria.threshold:g}"
    tt, tv, gap, last = (int(cols[k][g]) for k in ("t_train", "t_val", "gap", "last_step"))
    if phase == "diverged":
        return _divergence_text(cols, g)
    if phase in ("grokking", "comprehension"):
        op = ">=" if phase == "grokking" else "<"
        if tv < tt:
            return f"val acc reached {thr} at step {tv}, before train at step {tt}: gap {gap} {op} {criteria.gap}"
        return f"train acc reached {thr} at step {tt}, val at step {tv}: gap {gap} {op} {criteria.gap}"
    if phase == "memorization":
        return (
            f"train acc reached {thr} at step {tt}, val acc never did by step {last} "
            f"(max {cols['max_val_acc'][g]:.3g})"
        )
    final_train = f"{cols['final_train_acc'][g]:.3g}"
    if cols["t_val_ok"][g]:
        # Liu's notebook would call this comprehension; train never fitted, so it is not.
        return (
            f"val acc reached {thr} at step {tv} but train acc never did by step {last} "
            f"(final {final_train}): confusion, not comprehension"
        )
    return f"train acc never reached {thr} by step {last} (final {final_train})"


def _reasons(cols: Mapping[str, np.ndarray], criteria: PhaseCriteria) -> list[str]:
    # A Python loop, but over runs (not rows): ~10 ms for 10k runs.
    return [_reason(cols, g, criteria) for g in range(len(cols["phase"]))]


# ----------------------------------------------------------------------------- public API


def classify_curve(
    steps: Iterable[int],
    train_acc: Iterable[float],
    val_acc: Iterable[float],
    train_loss: Iterable[float] | None = None,
    val_loss: Iterable[float] | None = None,
    criteria: PhaseCriteria = PhaseCriteria(),
) -> Label:
    """Label one run from its logged curves (equal-length sequences; any step order).

    Losses are optional: without them no divergence can be detected.
    """
    step_arr = np.asarray(steps, dtype=np.int64).reshape(-1)
    n = step_arr.size
    arrays = [_float_array(a, n) for a in (train_acc, val_acc, train_loss, val_loss)]
    for name, arr in zip(("train_acc", "val_acc", "train_loss", "val_loss"), arrays):
        if arr.size != n:
            raise ValueError(f"{name} has {arr.size} values but steps has {n}")
    cols = _label_table(np.zeros(n, dtype=np.int64), 1, step_arr, *arrays, criteria)

    def opt_int(name: str) -> int | None:
        return int(cols[name][0]) if cols[f"{name}_ok"][0] else None

    return Label(
        phase=str(cols["phase"][0]),
        reason=_reason(cols, 0, criteria),
        t_train=opt_int("t_train"),
        t_val=opt_int("t_val"),
        gap=opt_int("gap"),
        final_train_acc=float(cols["final_train_acc"][0]),
        final_val_acc=float(cols["final_val_acc"][0]),
        max_val_acc=float(cols["max_val_acc"][0]),
        last_step=opt_int("last_step"),
        val_before_train=bool(cols["val_before_train"][0]),
    )


_REQUIRED = ("run_id", "step", "train_acc", "val_acc")


def classify(metrics: pd.DataFrame, criteria: PhaseCriteria = PhaseCriteria()) -> pd.DataFrame:
    """Label every run in a metrics frame (store.read_metrics' output, or any frame with the
    columns run_id, step, train_acc, val_acc and optionally train_loss, val_loss).

    Returns one row per run_id, sorted by run_id, with exactly store.LABELS_SCHEMA's columns;
    t_train, t_val, gap and last_step are nullable "Int64".
    """
    missing = [c for c in _REQUIRED if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics lacks the column(s) {missing}")
    codes, run_ids = pd.factorize(metrics["run_id"], sort=True)
    if (codes < 0).any():
        raise ValueError("metrics has rows with a missing run_id")
    n = len(metrics)
    arrays = [
        _float_array(metrics[c] if c in metrics.columns else None, n)
        for c in ("train_acc", "val_acc", "train_loss", "val_loss")
    ]
    steps = metrics["step"].to_numpy(dtype=np.int64)
    cols = _label_table(codes.astype(np.int64), len(run_ids), steps, *arrays, criteria)

    frame: dict[str, object] = {"run_id": run_ids}
    frame["phase"] = cols["phase"]
    frame["reason"] = _reasons(cols, criteria)
    for name in _INT_COLUMNS:
        frame[name] = pd.arrays.IntegerArray(cols[name], ~cols[f"{name}_ok"])
    for name in _FLOAT_COLUMNS:
        frame[name] = cols[name]
    frame["val_before_train"] = cols["val_before_train"]
    return pd.DataFrame(frame, columns=list(LABEL_COLUMNS))


def phase_counts(labels: pd.DataFrame | pd.Series | Iterable[Label | str]) -> dict[str, int]:
    """How many runs fall in each phase, in PHASES order (zeros included).

    Accepts classify()'s frame, a Series of phase names, or an iterable of Labels or names.
    """
    if isinstance(labels, pd.DataFrame):
        names = labels["phase"].tolist()
    else:
        names = [x.phase if isinstance(x, Label) else x for x in labels]
    counts = dict.fromkeys(PHASES, 0)
    for name in names:
        if name not in counts:
            raise ValueError(f"unknown phase {name!r}; expected one of {PHASES}")
        counts[name] += 1
    return counts
