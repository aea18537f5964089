"""Send a sweep's runs to the experiment trackers researchers already watch: MLflow, TensorBoard
and Weights & Biases.

The export reads a labelled results folder (the Parquet rows are the source of truth), so the
Ray workers never need a tracker's package or credentials, and a sweep that was interrupted and
resumed is simply exported again. Each grokgrid run is one tracker run (the runs of a pack,
trained together, are still separate runs), grouped by sweep: an MLflow experiment named like
the sweep, a TensorBoard folder per sweep, a W&B group in the project. A tracker run holds the
run's hyperparameters and the spec's fixed fields, every per-step metric at its step, and the
phase label with its timings (records.py says exactly what).

Exporting twice does not duplicate runs: each tracker run carries the grokgrid run id and a
digest of what was sent; a run already there unchanged is left alone, one whose rows or label
changed (a relabel with other criteria) is replaced.

Targets are written ``TRACKER[=WHERE]``:

* ``mlflow[=URI]``: a tracking URI (a server, ``databricks``, or a local folder = a file store);
  default $MLFLOW_TRACKING_URI, else the folder ``mlruns`` here;
* ``tensorboard[=FOLDER]``: a local log folder, runs go to FOLDER/<sweep>/<run_id>/; default
  ``tensorboard`` here;
* ``wandb[=[ENTITY/]PROJECT]``: default $WANDB_PROJECT, else ``grokgrid``; the mode (online,
  offline) and local folder are W&B's own settings (WANDB_MODE, WANDB_DIR).

Each tracker's package is optional (``pip install 'grokgrid[mlflow]'``, ``[tensorboard]``,
``[wandb]``) and imported only when asked for; asking without it is a one-line refusal.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from grokgrid.refusal import Refused
from grokgrid.spec import SweepSpec
from grokgrid.tracking.records import TrackedRun, tracked_runs

TRACKERS = ("mlflow", "tensorboard", "wandb")
# The module each tracker's adapter needs, and the grokgrid extra that installs it.
MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboardX", "wandb": "wandb"}


@dataclass(frozen=True)
class Target:
    """Where to send runs: a tracker and its destination (None: the tracker's default)."""

    tracker: str
    where: str | None = None
    option: str = "--to"  # the option it was given with, to name it in errors

    def __str__(self) -> str:
        return self.tracker if self.where is None else f"{self.tracker}={self.where}"


@dataclass(frozen=True)
class Exported:
    """What one export did: the tracker runs created, replaced (changed since the last export)
    and left as they were, and where they went."""

    target: Target
    destination: str  # the URI, folder or project, as resolved
    created: int
    replaced: int
    unchanged: int

    @property
    def runs(self) -> int:
        return self.created + self.replaced + self.unchanged

    def describe(self) -> str:
        return (f"{self.target.tracker}: {self.runs} run(s) at {self.destination} ({self.created} new, "
                f"{self.replaced} replaced, {self.unchanged} unchanged)")


def parse_target(text: str, option: str = "--to") -> Target:
    """``mlflow``, ``mlflow=file:///tmp/mlruns``, ``tensorboard=tb``, ``wandb=team/project``."""
    tracker, sep, where = str(text).strip().partition("=")
    tracker = tracker.strip().lower()
    if tracker not in TRACKERS:
        raise Refused(f"{option} {text!r}: unknown tracker; use one of {', '.join(TRACKERS)}, "
                      f"optionally with a destination, e.g. {option} mlflow=file:./mlruns")
    where = where.strip()
    if sep and not where:
        raise Refused(f"{option} {text!r}: nothing after '='; give a destination or leave '=' out for the default")
    return Target(tracker, where or None, option)


def parse_targets(texts: Sequence[str] | None, option: str = "--to") -> list[Target]:
    """Each target checked, and each tracker's package importable (or Refused naming the extra
    that installs it); the same tracker and destination twice count once."""
    targets = list(dict.fromkeys(parse_target(t, option) for t in (texts or [])))
    for target in targets:
        check_available(target)
        _module(target.tracker).check(target)  # the destination's form, before any work
    return targets


def check_available(target: Target) -> None:
    """Refused (one line naming the pip command) when the tracker's package cannot be imported."""
    module = MODULES[target.tracker]
    try:
        importlib.import_module(module)
    except ImportError:
        raise Refused(f"{target.option} {target.tracker}: the {module} package is not installed; "
                      f"pip install 'grokgrid[{target.tracker}]'") from None


def export(target: Target, spec: SweepSpec, labels: pd.DataFrame, metrics: pd.DataFrame, run_ids: list[str],
           pack_of: dict[str, str], say: Callable[[str], None] = lambda text: None) -> Exported:
    """Send the runs ``run_ids`` (finished, labelled) of a sweep to ``target``; returns what
    was done. ``metrics``: their per-step rows; ``pack_of``: run id -> pack id (a tag)."""
    runs = tracked_runs(spec, labels, metrics, run_ids, pack_of)
    adapter = _adapter(target.tracker)
    return adapter(target, runs, say)


def _adapter(tracker: str) -> Callable[[Target, list[TrackedRun], Callable[[str], None]], Exported]:
    return _module(tracker).export


def _module(tracker: str):
    # Imported when asked for: each adapter imports its tracker's package inside its functions.
    if tracker == "mlflow":
        from grokgrid.tracking import to_mlflow as module
    elif tracker == "tensorboard":
        from grokgrid.tracking import to_tensorboard as module
    else:
        from grokgrid.tracking import to_wandb as module
    return module


__all__ = ["Exported", "MODULES", "TRACKERS", "Target", "TrackedRun", "check_available", "export", "parse_target",
           "parse_targets", "tracked_runs"]
