"""TensorBoard: event files in FOLDER/<sweep>/<run_id>/, one folder per grokgrid run, so that
``tensorboard --logdir FOLDER`` lists the runs grouped by sweep.

A run's folder holds every per-step metric as a scalar at its step (tags named as the Parquet
columns: train_acc, val_acc, ...), the outcome numbers as scalars label/t_train, label/t_val, ...
at the run's last step, the phase, detail and reason as text (tag ``label``), and the
hyperparameters, fixed spec fields and phase for the HParams dashboard (filter runs by phase,
plot t_val against a learning rate). Written with tensorboardX, which ships with Ray Tune, so
nothing else needs installing; TensorBoard itself reads the files.

Event files only grow, so a changed run is not appended to: its folder is written anew beside
the old one under a hidden name, then swapped into place (rename, rename, delete), and a
``grokgrid.json`` in the folder records the digest that lets an unchanged run be skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from grokgrid.location import is_uri
from grokgrid.refusal import Refused
from grokgrid.tracking import Exported, Target
from grokgrid.tracking.records import TrackedRun

DEFAULT_FOLDER = "tensorboard"
MARKER = "grokgrid.json"
LABEL_PREFIX = "label/"


def log_folder(target: Target) -> Path:
    where = target.where or DEFAULT_FOLDER
    if is_uri(where):
        raise Refused(f"{target.option} {target}: TensorBoard logs go to a local folder here; give a path, "
                      "e.g. tensorboard=runs/tb")
    return Path(where).expanduser().resolve()


def check(target: Target) -> None:
    log_folder(target)


def export(target: Target, runs: list[TrackedRun], say: Callable[[str], None]) -> Exported:
    folder = log_folder(target)
    created = replaced = unchanged = 0
    for run in runs:
        place = folder / run.sweep / run.run_id
        if _digest_at(place) == run.digest:
            unchanged += 1
            continue
        existed = place.exists()
        try:
            _write_run(place, run)
        except OSError as exc:
            raise Refused(f"{target.option} {target}: cannot write {place} ({exc.strerror or exc}); "
                          "give a folder you can write to") from None
        replaced, created = (replaced + 1, created) if existed else (replaced, created + 1)
    return Exported(target, str(folder), created, replaced, unchanged)


def _digest_at(place: Path) -> str | None:
    try:
        return json.loads((place / MARKER).read_text()).get("digest")
    except (OSError, ValueError, AttributeError):
        return None


def _write_run(place: Path, run: TrackedRun) -> None:
    """Write the run's folder whole under a hidden name, then swap it into place."""
    place.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    fresh = place.parent / f".{run.run_id}.{token}.new"
    old = place.parent / f".{run.run_id}.{token}.old"
    try:
        _write_events(fresh, run)
        (fresh / MARKER).write_text(json.dumps({"sweep": run.sweep, "run_id": run.run_id, "digest": run.digest}))
        if place.exists():
            os.replace(place, old)
        os.replace(fresh, place)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _write_events(folder: Path, run: TrackedRun) -> None:
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    writer = SummaryWriter(logdir=str(folder), flush_secs=3600, max_queue=10_000)
    try:
        for name, (steps, values) in run.points().items():
            for step, value in zip(steps.tolist(), values.tolist()):
                writer.add_scalar(name, value, step)
        last = int(run.outcome.get("last_step", run.metrics.index.max() if len(run.metrics) else 0))
        numbers = {f"{LABEL_PREFIX}{k}": float(v) for k, v in run.outcome.items() if not isinstance(v, str)}
        for name, value in numbers.items():
            writer.add_scalar(name, value, last)
        text = {k: v for k, v in run.outcome.items() if isinstance(v, str)}
        writer.add_text("label", "  \n".join(f"**{k}**: {v}" for k, v in text.items()), last)
        # The HParams dashboard: the run's inputs and its phase; its metrics are the label scalars.
        hparam_values = {**run.params, **{k: v for k, v in text.items() if k != "reason"}}
        for summary in hparams(hparam_values, numbers or {f"{LABEL_PREFIX}last_step": float(last)}):
            writer.file_writer.add_summary(summary)
    finally:
        writer.close()


__all__ = ["check", "export", "log_folder"]
