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

Reported beside the phase (column ``detail``, "" when none applies), from the later papers:

* semi-grokking (Varma et al. 2023): a memorization run whose val accuracy rose late to a middling
  plateau and stayed flat there. ``t_semi`` = first step val acc ``>= semi_min``; the run is
  semi-grokking when ``t_semi - t_train >= G`` (the same gap as grokking), its plateau val
  accuracy lies in ``[semi_min, semi_max)`` (defaults 0.4 and 0.9) and the plateau is flat: at
  most ``plateau_rise_max`` (default 0.05) above the val accuracy at ``t_mid = t_semi +
  (last_step - t_semi) // 2``, half way from the jump to the end, but no later than two plateau
  windows before the end (``last_step - 2 * plateau_window * (last_step - first_step)``: a jump
  in the last fifth of the steps has no room to show a plateau). That val accuracy is the mean
  (NaNs skipped) over steps in ``[t_mid - plateau_window * (last_step - first_step), t_mid]``, a
  window as wide as the plateau's; when that window holds no finite val acc (sparse, e.g.
  log-spaced, logging), it reaches back to the last step ``<= t_mid`` with one; with none at
  all (t_mid before the first step, as with a plateau window of half the run) nothing shows
  the curve levelled off, and the run is not semi-grokking. A curve still
  rising at the end of the budget (Omnigrok digits: 0.45 at step 10k, 0.57 at 20k) is thus plain
  memorization, while a jump has the first half of the steps after it to settle, and both ends
  are window means, so that no single noisy eval decides;
* with stages (spec ``stages:``, the ``stage`` column), ungrokking is also a run whose val accuracy
  first reached ``T`` in one stage and, after a stage boundary, fell as below (by ``drop_min``,
  train staying ``>= T``): ``t_drop`` lies in a later stage than ``t_val``. That is Varma et al.'s
  setup (generalise on D, then train on a subset D' below D_crit), whatever the first stage's
  phase, so such a comprehension run is ungrokking, not misgrokking. A fall within the stage the
  run generalised in is judged as without stages, and a run without stages (all stage 0) is
  labelled exactly as before stages existed;
* ungrokking (Varma et al.) and misgrokking (Lyu et al. 2023): val accuracy reached ``T``, then
  fell below it at ``t_drop`` and stayed below to the last logged step, by at least ``drop_min``
  (peak val acc minus plateau val acc, default 0.1), while train accuracy stayed ``>= T`` from
  ``t_drop`` on. The two differ in how the run generalised first: after a delay (phase grokking,
  as in Varma's ungrokking, which loses a grokked solution) -> ungrokking; promptly (phase
  comprehension, as in Lyu's misgrokking, where the early solution generalises and the late one
  does not) -> misgrokking.

The plateau val accuracy (``plateau_val_acc``) is the mean val accuracy (NaNs skipped) over the
last ``plateau_window`` fraction (default 0.1) of the run's logged step range, i.e. over steps
``>= last_step - plateau_window * (last_step - first_step)``: robust to a noisy last eval.
``t_drop`` is the first logged step after the last one at which val acc was ``>= T`` (None when
val never reached ``T`` or still was ``>= T`` at the last step), reported whatever the detail.

A NaN accuracy (e.g. an eval that was not run) simply does not reach the threshold at that step
(``NaN >= T`` is False); it is not a divergence by itself. ``max_val_acc`` ignores NaNs.

``classify_curve`` labels one run; ``classify`` labels a whole metrics frame at once, vectorised
over runs with numpy (10k runs x 1k steps in a few seconds). Both go through the same code, so
they always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from grokgrid.criteria import PhaseCriteria
from grokgrid.phase_reasons import reason as _reason
from grokgrid.phase_reasons import reasons as _reasons

PHASES = ("comprehension", "grokking", "memorization", "confusion", "diverged")
# The `detail` column: labels reported beside the phase ("" when none applies). Each refines one
# or two phases: semi-grokking is a kind of memorization, ungrokking of grokking, misgrokking of
# comprehension (with stages, ungrokking may also follow comprehension: phases.py says when).
DETAILS = ("semi-grokking", "ungrokking", "misgrokking")
DETAIL_PHASE = {"semi-grokking": "memorization", "ungrokking": "grokking", "misgrokking": "comprehension"}

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
    "detail",
    "reason",
    "t_train",
    "t_val",
    "gap",
    "t_semi",
    "t_drop",
    "final_train_acc",
    "final_val_acc",
    "max_val_acc",
    "plateau_val_acc",
    "last_step",
    "val_before_train",
)
_INT_COLUMNS = ("t_train", "t_val", "gap", "t_semi", "t_drop", "last_step")
_FLOAT_COLUMNS = ("final_train_acc", "final_val_acc", "max_val_acc", "plateau_val_acc")

# "Never happened" / "no rows" markers for the per-run min / max step reductions (they need numbers).
_NEVER = np.iinfo(np.int64).max
_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Label:
    """One run's phase and timings: the columns of store.LABELS_SCHEMA except run_id.

    phase             one of PHASES
    detail            one of DETAILS, or "" (none applies)
    reason            a short sentence with the numbers behind the phase (and the detail)
    t_train, t_val    first logged step with train / val accuracy >= threshold (None: never)
    gap               t_val - t_train when both were reached (negative if val came first), else None
    t_semi            first logged step with val accuracy >= semi_min (None: never)
    t_drop            first logged step after the last one with val accuracy >= threshold, when val
                      reached it and was below it at the end (None otherwise)
    final_*_acc       accuracy at the last logged step within the budget (NaN if none or not logged)
    max_val_acc       highest val accuracy within the budget, NaNs skipped (NaN if none)
    plateau_val_acc   mean val accuracy over the last plateau_window of the step range (NaN if none)
    last_step         last logged step within the budget (None: no steps)
    val_before_train  val reached the threshold and train had not (yet, or ever) at that step
    """

    phase: str
    detail: str
    reason: str
    t_train: int | None
    t_val: int | None
    gap: int | None
    t_semi: int | None
    t_drop: int | None
    final_train_acc: float
    final_val_acc: float
    max_val_acc: float
    plateau_val_acc: float
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
    stage: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Label ``n_groups`` runs given each row's run code (0..n_groups-1), rows in any order.
    ``stage``: each row's stage (None: every row is stage 0, as for a run without stages).

    Returns one array per LABELS field (no run_id, no reason) plus ``<name>_ok`` masks for the
    nullable integer fields and what the reasons need (``div_row``, ``had_rows``...).
    """
    had_rows = np.bincount(codes, minlength=n_groups) > 0
    stage = np.zeros(steps.size, dtype=np.int64) if stage is None else stage
    if criteria.budget is not None:
        keep = steps <= criteria.budget
        codes, steps, stage = codes[keep], steps[keep], stage[keep]
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

    # Plateau: mean val acc (NaNs skipped) over the last plateau_window of the step range.
    first_step = _group_min(steps, codes, n_groups, _NEVER)
    span = np.where(has_rows, last_step.astype(np.float64) - first_step.astype(np.float64), 0.0)
    window_start = np.where(has_rows, last_step - criteria.plateau_window * span, 0.0)
    in_window = (steps >= window_start[codes]) & np.isfinite(val_acc)
    n_window = np.bincount(codes[in_window], minlength=n_groups)
    sum_window = np.bincount(codes[in_window], weights=val_acc[in_window], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        plateau = np.where(n_window > 0, sum_window / np.maximum(n_window, 1), np.nan)
    # The mean of equal values must equal them (0.4 six times is not 0.39999999999999997), or the
    # plateau bounds would not be the documented inclusive / exclusive ones.
    plateau = np.round(plateau, 12)

    # Semi-grokking: the first step val acc reached semi_min, late enough after train fitted.
    t_semi = _group_min(np.where((val_acc >= criteria.semi_min) & trusted, steps, _NEVER), codes, n_groups, _NEVER)
    semi_ok = t_semi != _NEVER
    semi_candidate = (phase == "memorization") & semi_ok  # memorization implies train_ok
    semi_delay = np.zeros(n_groups, dtype=np.int64)
    semi_delay[semi_candidate] = t_semi[semi_candidate] - t_train[semi_candidate]
    # Flat: the plateau is at most plateau_rise_max above the val acc half way from t_semi to the
    # last step (mean over a window as wide as the plateau's ending there, stretched back to the
    # last finite val acc at or before t_mid when that window holds none, e.g. under log spacing).
    from_semi, to_last = (np.where(semi_candidate, a, 0) for a in (t_semi, last_step))  # no overflow
    # ... but at least two plateau windows before the last step, so that the reference window
    # ends a window's width before the plateau's begins: a curve that crosses semi_min late and
    # is still climbing (Varma's sweep: 0.13 -> 0.46 over the last 4,000 of 10,000 steps, crossing
    # 0.4 at 9,355) is compared with where it was well before the end, not a few steps before.
    latest = to_last - np.ceil(2 * criteria.plateau_window * span).astype(np.int64)
    t_mid = np.where(semi_candidate, np.minimum(from_semi + (to_last - from_semi) // 2, latest), _MIN)
    finite_val = np.isfinite(val_acc) & trusted
    ref_last = _group_max(np.where(finite_val & (steps <= t_mid[codes]), steps, _MIN), codes, n_groups, _MIN)
    ref_start = np.minimum(t_mid - criteria.plateau_window * span, ref_last.astype(np.float64))
    in_ref = finite_val & semi_candidate[codes] & (steps >= ref_start[codes]) & (steps <= t_mid[codes])
    n_ref = np.bincount(codes[in_ref], minlength=n_groups)
    sum_ref = np.bincount(codes[in_ref], weights=val_acc[in_ref], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.round(np.where(n_ref > 0, sum_ref / np.maximum(n_ref, 1), np.nan), 12)
        rise = np.round(plateau - ref, 12)
        shaped = semi_candidate & (semi_delay >= criteria.gap) & (plateau >= criteria.semi_min) & (plateau < criteria.semi_max)
        flat = rise <= criteria.plateau_rise_max
    semi = shaped & flat

    # The drop: the first step after the last one at or over the threshold (every later step,
    # NaNs included, is below it), when there is one.
    last_hit = _group_max(np.where((val_acc >= thr) & trusted, steps, _MIN), codes, n_groups, _MIN)
    after_hit = trusted & val_ok[codes] & (steps > last_hit[codes])
    t_drop = _group_min(np.where(after_hit, steps, _NEVER), codes, n_groups, _NEVER)
    drop_ok = t_drop != _NEVER
    # Lowest train acc from the drop on (NaNs skipped; NaN when none was logged).
    train_after = np.full(n_groups, np.nan)
    from_drop = trusted & drop_ok[codes] & (steps >= t_drop[codes])
    np.fmin.at(train_after, codes[from_drop], train_acc[from_drop])
    fall = np.round(max_val - plateau, 12)
    with np.errstate(invalid="ignore"):
        train_stayed = train_after >= thr
        fell_enough = fall >= criteria.drop_min
    dropped = drop_ok & (phase != "diverged") & train_stayed & fell_enough
    # With stages: a run that generalised in one stage and fell in a later one ungrokked (Varma
    # et al.: the later stage trains on a subset below D_crit), whether it generalised late or
    # promptly; a fall within the stage it generalised in reads as without stages.
    stage_val = _group_max(np.where(val_ok[codes] & (steps == t_val[codes]), stage, -1), codes, n_groups, -1)
    stage_drop = _group_max(np.where(drop_ok[codes] & (steps == t_drop[codes]), stage, -1), codes, n_groups, -1)
    staged_drop = val_ok & drop_ok & (stage_drop > stage_val)

    detail = np.select(
        [dropped & (staged_drop | (phase == "grokking")), dropped & (phase == "comprehension"), semi],
        ["ungrokking", "misgrokking", "semi-grokking"],
        "",
    ).astype(object)

    return {
        "phase": phase,
        "detail": detail,
        "t_train": t_train,
        "t_train_ok": train_ok,
        "t_val": t_val,
        "t_val_ok": val_ok,
        "gap": gap,
        "gap_ok": both,
        "t_semi": t_semi,
        "t_semi_ok": semi_ok,
        "t_drop": t_drop,
        "t_drop_ok": drop_ok,
        "plateau_val_acc": plateau,
        "final_train_acc": at_last(train_acc),
        "final_val_acc": at_last(val_acc),
        "max_val_acc": max_val,
        "last_step": np.where(has_rows, last_step, 0),
        "last_step_ok": has_rows,
        "val_before_train": val_ok & (~train_ok | (t_val < t_train)),
        # For the reasons only:
        "semi_delay": semi_delay,
        "semi_mid": t_mid,
        "semi_ref": ref,
        "semi_rise": rise,
        "semi_rising": shaped & ~flat,
        "train_after": train_after,
        "fall": fall,
        "stage_val": stage_val,
        "stage_drop": stage_drop,
        "staged_drop": staged_drop,
        "had_rows": had_rows,
        "div_step": div_step,
        "div_row": div_row,
        "bad_train": bad_train,
        "bad_val": bad_val,
        "train_loss": train_loss,
        "val_loss": val_loss,
    }


# ----------------------------------------------------------------------------- public API


def classify_curve(
    steps: Iterable[int],
    train_acc: Iterable[float],
    val_acc: Iterable[float],
    train_loss: Iterable[float] | None = None,
    val_loss: Iterable[float] | None = None,
    criteria: PhaseCriteria = PhaseCriteria(),
    stage: Iterable[int] | None = None,
) -> Label:
    """Label one run from its logged curves (equal-length sequences; any step order).

    Losses are optional: without them no divergence can be detected. ``stage``: each step's
    stage (None: a run without stages).
    """
    step_arr = np.asarray(steps, dtype=np.int64).reshape(-1)
    n = step_arr.size
    arrays = [_float_array(a, n) for a in (train_acc, val_acc, train_loss, val_loss)]
    for name, arr in zip(("train_acc", "val_acc", "train_loss", "val_loss"), arrays):
        if arr.size != n:
            raise ValueError(f"{name} has {arr.size} values but steps has {n}")
    stage_arr = None if stage is None else np.asarray(stage, dtype=np.int64).reshape(-1)
    if stage_arr is not None and stage_arr.size != n:
        raise ValueError(f"stage has {stage_arr.size} values but steps has {n}")
    cols = _label_table(np.zeros(n, dtype=np.int64), 1, step_arr, *arrays, criteria, stage_arr)

    def opt_int(name: str) -> int | None:
        return int(cols[name][0]) if cols[f"{name}_ok"][0] else None

    return Label(
        phase=str(cols["phase"][0]),
        detail=str(cols["detail"][0]),
        reason=_reason(cols, 0, criteria),
        t_train=opt_int("t_train"),
        t_val=opt_int("t_val"),
        gap=opt_int("gap"),
        t_semi=opt_int("t_semi"),
        t_drop=opt_int("t_drop"),
        final_train_acc=float(cols["final_train_acc"][0]),
        final_val_acc=float(cols["final_val_acc"][0]),
        max_val_acc=float(cols["max_val_acc"][0]),
        plateau_val_acc=float(cols["plateau_val_acc"][0]),
        last_step=opt_int("last_step"),
        val_before_train=bool(cols["val_before_train"][0]),
    )


_REQUIRED = ("run_id", "step", "train_acc", "val_acc")


def classify(metrics: pd.DataFrame, criteria: PhaseCriteria = PhaseCriteria()) -> pd.DataFrame:
    """Label every run in a metrics frame (store.read_metrics' output, or any frame with the
    columns run_id, step, train_acc, val_acc and optionally train_loss, val_loss).

    Returns one row per run_id, sorted by run_id, with exactly store.LABELS_SCHEMA's columns;
    t_train, t_val, gap, t_semi, t_drop and last_step are nullable "Int64".
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
    # A frame without stages (or read from parts written before them) is all stage 0.
    stage = metrics["stage"].fillna(0).to_numpy(dtype=np.int64) if "stage" in metrics.columns else None
    cols = _label_table(codes.astype(np.int64), len(run_ids), steps, *arrays, criteria, stage)

    frame: dict[str, object] = {"run_id": run_ids}
    frame["phase"] = cols["phase"]
    frame["detail"] = cols["detail"]
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


def detail_counts(labels: pd.DataFrame | pd.Series | Iterable[Label | str]) -> dict[str, int]:
    """How many runs carry each detail label, in DETAILS order (zeros included; "" and missing
    values, e.g. from a labels file written before the column existed, are not counted)."""
    if isinstance(labels, pd.DataFrame):
        names = labels["detail"].tolist() if "detail" in labels.columns else []
    else:
        names = [x.detail if isinstance(x, Label) else x for x in labels]
    counts = dict.fromkeys(DETAILS, 0)
    for name in names:
        if name is None or name is pd.NA or name == "" or (isinstance(name, float) and math.isnan(name)):
            continue
        if name not in counts:
            raise ValueError(f"unknown detail {name!r}; expected one of {DETAILS} or ''")
        counts[name] += 1
    return counts
