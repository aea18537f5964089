"""The runs' learning curves as the report carries them: each run's metric rows downsampled to
log-spaced steps (``curve_data``), encoded compactly for the page's script (``encode_curves``:
base64 float16, step patterns shared between runs), and the step-axis conventions the curve
figures and the script share (where step 0 is drawn on a log axis, and how that is titled).

Vectorised with numpy: a 10,000-run x 1,000-step sweep's 10M rows take a few seconds.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from grokgrid.report.axes import format_steps

MAX_CURVE_POINTS = 100  # log-spaced steps kept per run (plus its first and last)
# Metric columns drawn as curves; the positive ones are embedded as log10 (float16 keeps ~3
# significant digits of the exponent, i.e. ~1% of the value, over any range).
CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm")
_LOG_METRICS = ("train_loss", "val_loss", "weight_norm")


@dataclass
class CurveData:
    """Downsampled curves of a list of runs, concatenated: run i owns rows offsets[i]:offsets[i+1]
    of ``steps`` and of each ``values[metric]`` (NaN where the metric is missing)."""

    run_ids: list[str]
    offsets: np.ndarray
    steps: np.ndarray
    values: dict[str, np.ndarray]

    def run(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.steps[a:b], {k: v[a:b] for k, v in self.values.items()}


def stage_ends(metrics: pd.DataFrame) -> list[int]:
    """The steps where a stage ends and the next begins (the last step of each stage but the
    last), from the rows' ``stage`` column: every run of a sweep shares them. [] without stages."""
    if "stage" not in metrics.columns or metrics.empty:
        return []
    stage = metrics["stage"].fillna(0).astype("int64")
    if int(stage.max()) <= 0:
        return []
    ends = metrics["step"].groupby(stage).max().sort_index()
    return [int(step) for step in ends.iloc[:-1]]


def curve_data(metrics: pd.DataFrame, run_ids: Sequence[str], max_points: int = MAX_CURVE_POINTS) -> CurveData:
    """Each run's curves at step >= 0, sorted by step and downsampled to the first logged step at
    or after each of ``max_points`` log-spaced targets between its first positive and its last
    step, plus those two and step 0 (runs with at most ``max_points`` steps keep them all).

    Step 0 (the untrained model) is kept at its true step; the figures draw it at
    ``zero_step_x`` and say so, since a log axis has no 0.

    Vectorised over rows (10M rows in a few seconds); rows may come in any order.
    """
    run_ids = [str(r) for r in run_ids]
    n_runs = len(run_ids)
    if len(metrics) == 0 or n_runs == 0:
        empty = np.zeros(0)
        return CurveData(run_ids, np.zeros(n_runs + 1, dtype=np.int64), empty.astype(np.int64),
                         {m: empty for m in CURVE_METRICS})  # fmt: skip
    # Factorize the 10M-row column (pyarrow dictionary-encodes it fast), then map its few
    # thousand distinct ids onto run_ids: far cheaper than hashing every row against run_ids.
    row_codes, distinct = pd.factorize(metrics["run_id"])
    to_run = pd.Index(run_ids).get_indexer(pd.Index(distinct).astype(str))
    codes = np.where(row_codes >= 0, to_run[np.maximum(row_codes, 0)], -1) if to_run.size else np.full(len(metrics), -1)
    steps = metrics["step"].to_numpy(dtype=np.int64)
    rows = np.flatnonzero((codes >= 0) & (steps >= 0))
    codes, steps = codes[rows].astype(np.int64), steps[rows]
    if steps.size and steps.max() < (1 << 40) and n_runs < (1 << 22):
        key = (codes << 40) | steps
        if not (key[1:] >= key[:-1]).all():  # store.read_metrics gives sorted rows: no sort
            order = np.argsort(key, kind="stable")
            rows, codes, steps, key = rows[order], codes[order], steps[order], key[order]
    else:  # pragma: no cover - steps beyond 2**40 or millions of runs
        order = np.lexsort((steps, codes))
        rows, codes, steps = rows[order], codes[order], steps[order]
        key = None

    counts = np.bincount(codes, minlength=n_runs)
    ends = np.cumsum(counts)
    starts = ends - counts
    keep = np.zeros(rows.size, dtype=bool)
    small = np.repeat(counts <= max_points, counts)
    keep[small] = True
    big = np.flatnonzero(counts > max_points)
    if big.size:
        # The log-spaced targets start at the first positive step (log 0 is -inf); step 0, the
        # run's first row when logged, is kept as well.
        if key is not None:
            positive = np.searchsorted(key, (big << 40) | 1)
        else:  # pragma: no cover
            positive = np.array([starts[b] + np.searchsorted(steps[starts[b] : ends[b]], 1) for b in big])
        positive = np.minimum(positive, ends[big] - 1)
        first = np.maximum(steps[positive], 1).astype(np.float64)
        last = np.maximum(steps[ends[big] - 1], 1).astype(np.float64)
        frac = np.linspace(0.0, 1.0, max_points)
        targets = np.ceil(np.exp(np.log(first)[:, None] + np.outer(np.log(last / first), frac))).astype(np.int64)
        if key is not None:
            pos = np.searchsorted(key, (big[:, None] << 40) | targets)
        else:  # pragma: no cover
            pos = np.stack([starts[b] + np.searchsorted(steps[starts[b] : ends[b]], t) for b, t in zip(big, targets)])
        pos = np.minimum(pos, (ends[big] - 1)[:, None])
        keep[pos.ravel()] = True
        keep[starts[big]] = True
        keep[positive] = True
        keep[ends[big] - 1] = True
    picked = rows[keep]
    per_run = np.bincount(codes[keep], minlength=n_runs)
    offsets = np.concatenate([[0], np.cumsum(per_run)]).astype(np.int64)
    values = {}
    for m in CURVE_METRICS:
        if m in metrics.columns:
            values[m] = metrics[m].to_numpy(dtype=np.float64, na_value=np.nan)[picked]
        else:
            values[m] = np.full(picked.size, np.nan)
    return CurveData(run_ids, offsets, steps[keep], values)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")

def encode_curves(curves: CurveData) -> dict:
    """The curves as the page embeds them: per run its point count and step pattern (runs logged
    at the same steps share one), steps as base64 little-endian float64, each metric as base64
    little-endian float16 (log10 of the value for the metrics in ``log_values``)."""
    patterns: dict[bytes, int] = {}
    pattern_of = []
    step_blobs = []
    for i in range(len(curves.run_ids)):
        s = curves.steps[curves.offsets[i] : curves.offsets[i + 1]].astype("<f8")
        blob = s.tobytes()
        if blob not in patterns:
            patterns[blob] = len(patterns)
            step_blobs.append(base64.b64encode(blob).decode("ascii"))
        pattern_of.append(patterns[blob])
    values = {}
    for m, v in curves.values.items():
        if m in _LOG_METRICS:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v >= 0, np.log10(np.where(v >= 0, v, 1.0)), np.nan)
        values[m] = _b64(np.clip(v, -65504, 65504).astype("<f2"))
    return {
        "n": np.diff(curves.offsets).tolist(),
        "pattern": pattern_of,
        "patterns": step_blobs,
        "values": values,
        "log_values": list(_LOG_METRICS),
    }


def zero_step_x(steps: np.ndarray) -> float:
    """Where the step axes draw step 0 (a log axis has no 0): at half the smallest positive step
    in the figure (1 if there is none). That is log10(2) = 0.3 decades left of the first logged
    step, the same place for every run of the figure: next to the curves' start yet apart from
    it, where placing it at step 1 would stretch the first segment over a decade or more (or sit
    on a real step 1). The axis title (``step_title``) and the hover (the true step) say so;
    the page's script (zeroStepX) does the same for the clicked cell's runs."""
    positive = np.asarray(steps, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return float(positive.min()) / 2 if positive.size else 1.0


def plotted_steps(steps: np.ndarray, zero_x: float) -> np.ndarray:
    """x coordinates of ``steps`` on a log step axis: step 0 at ``zero_x`` (see zero_step_x)."""
    steps = np.asarray(steps, dtype=float)
    return np.where(steps > 0, steps, zero_x)


def step_title(has_zero: bool, zero_x: float) -> str:
    """The x title of a step panel; it names where step 0 is drawn when a run logged it."""
    return f"step (step 0 drawn at {format_steps(zero_x)})" if has_zero else "step"


def positive_range(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    return (float(values.min()), float(values.max())) if values.size else (1.0, 10.0)


def loss_axis_is_log(curves: CurveData) -> bool:
    losses = np.concatenate([curves.values["train_loss"], curves.values["val_loss"]])
    finite = losses[np.isfinite(losses)]
    # Losses span decades (memorised train loss -> 1e-6); log only when every value allows it.
    return bool(finite.size == 0 or finite.min() > 0)
