"""What a tracker run holds, the same for every tracker: built from a results folder's frozen
spec, its labels and its per-step Parquet rows (the source of truth), one per grokgrid run.

* params: the run's hyperparameters (the seven, then any extra axis: ``shrink.train_subset``,
  ``task.p``, ...) under their runs.parquet names, and the spec's fixed fields as
  ``task.*``, ``model.*``, ``training.*``, ``phases.*`` and ``stages.<name>.*`` (a list value as its
  text, e.g. ``model.hidden: [200, 200]``; a field the spec leaves unset is left out);
* metrics: every per-step metric column at its step (store.METRICS_SCHEMA, less a column that is
  empty for this task, e.g. commutativity on a non-commutative one); a non-finite value (a
  diverged run's last loss) is left out, since trackers chart numbers (its phase says diverged);
* outcome: the label (phase, detail, reason) and its timings and finals from labels.parquet
  (t_train, t_val, gap, ...; a time never reached is left out);
* a digest of all of it, stored with the tracker run, so an export finds the runs it already
  sent unchanged and leaves them (and replaces those whose rows or label changed).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from grokgrid import grid
from grokgrid.spec import SweepSpec

OUTCOME_TEXT = ("phase", "detail", "reason")
OUTCOME_NUMBERS = ("t_train", "t_val", "gap", "t_semi", "t_drop", "final_train_acc", "final_val_acc", "max_val_acc",
                   "plateau_val_acc", "last_step")
NOT_METRICS = ("run_id", "step")
FIXED_SECTIONS = ("task", "model", "training", "phases")

Value = str | int | float | bool


@dataclass(frozen=True)
class TrackedRun:
    sweep: str
    run_id: str
    pack_id: str  # the pack it trained in ("" when the runs table does not say)
    params: dict[str, Value]
    outcome: dict[str, Value]
    metrics: pd.DataFrame  # indexed by step, one column per metric, NaN where not logged
    digest: str

    @property
    def name(self) -> str:
        return self.run_id

    def points(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """metric -> (steps, values), the finite values only."""
        out = {}
        steps = self.metrics.index.to_numpy(dtype=np.int64)
        for column in self.metrics.columns:
            values = self.metrics[column].to_numpy(dtype=np.float64)
            keep = np.isfinite(values)
            if keep.any():
                out[column] = (steps[keep], values[keep])
        return out

    def rows(self) -> list[tuple[int, dict[str, float]]]:
        """(step, {metric: value}) per logged step, finite values only (for trackers that log a
        step's metrics together)."""
        frame = self.metrics
        out = []
        for step, values in zip(frame.index.tolist(), frame.to_numpy(dtype=np.float64)):
            row = {c: float(v) for c, v in zip(frame.columns, values) if math.isfinite(v)}
            if row:
                out.append((int(step), row))
        return out

    def tags(self) -> dict[str, str]:
        """Identity and label as text (tracker tags): grokgrid.sweep, grokgrid.run_id, ..."""
        return {"grokgrid.sweep": self.sweep, "grokgrid.run_id": self.run_id, "grokgrid.pack_id": self.pack_id,
                "grokgrid.digest": self.digest, **{k: str(v) for k, v in self.outcome.items() if k in OUTCOME_TEXT}}


def tracked_runs(spec: SweepSpec, labels: pd.DataFrame, metrics: pd.DataFrame, run_ids: list[str],
                 pack_of: Mapping[str, str]) -> list[TrackedRun]:
    """One TrackedRun per id of ``run_ids`` (in that order) that has a label."""
    fixed = fixed_params(spec)
    config = {r.run_id: r for r in grid.expand(spec)}
    label_of = {row["run_id"]: row for row in labels.to_dict("records")}
    by_run = dict(tuple(metrics.groupby("run_id", sort=False))) if len(metrics) else {}
    out = []
    for run_id in run_ids:
        if run_id not in label_of or run_id not in config:
            continue
        params = {**fixed, **{k: _plain(v) for k, v in config[run_id].columns().items()}}
        outcome = _outcome(label_of[run_id])
        frame = _metric_frame(by_run.get(run_id), keep_stage=bool(spec.stages))
        out.append(TrackedRun(spec.name, run_id, pack_of.get(run_id, ""), params, outcome, frame,
                              _digest(params, outcome, frame)))
    return out


def fixed_params(spec: SweepSpec) -> dict[str, Value]:
    """The spec's fields every run shares, flattened: task.p, model.hidden, training.steps, ..."""
    data = spec.to_dict()
    out: dict[str, Value] = {}
    for section in FIXED_SECTIONS:
        out.update(_flatten(data.get(section) or {}, f"{section}."))
    for stage in data.get("stages") or []:
        out.update(_flatten({k: v for k, v in stage.items() if k != "name"}, f"stages.{stage['name']}."))
    return out


def _flatten(data: Mapping, prefix: str) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = _plain(value)
    return out


def _plain(value: object) -> Value:
    """A param value trackers take: numbers and bools as they are, anything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([_plain(v) for v in value])
    return str(value)


def _outcome(label: Mapping[str, object]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key in OUTCOME_TEXT:
        value = label.get(key)
        if isinstance(value, str) and (value or key == "phase"):
            out[key] = value
    for key in OUTCOME_NUMBERS:
        value = label.get(key)
        if value is None or value is pd.NA:
            continue
        number = float(value)
        if math.isfinite(number):
            out[key] = int(number) if key.startswith("t_") or key in ("gap", "last_step") else number
    return out


def _metric_frame(rows: pd.DataFrame | None, keep_stage: bool) -> pd.DataFrame:
    """A run's rows as step -> metrics; ``stage`` only for a sweep with stages (else all 0)."""
    if rows is None or rows.empty:
        return pd.DataFrame(index=pd.Index([], name="step", dtype="int64"))
    dropped = [c for c in NOT_METRICS if c != "step"] + ([] if keep_stage else ["stage"])
    frame = rows.drop(columns=[c for c in dropped if c in rows.columns]).set_index("step").sort_index()
    frame = frame.apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame.loc[:, frame.notna().any()]  # a metric this task never has (NaN throughout)


def _digest(params: Mapping, outcome: Mapping, frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([params, outcome, list(frame.columns)], sort_keys=True, default=str).encode())
    h.update(frame.index.to_numpy(dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]
