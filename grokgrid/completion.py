"""Which runs are finished, judged from their metric rows on disk (never from Ray's "no error").

A run is **finished** when its rows end where training ends for it:

- ``complete``: a row at the last step (``spec.total_steps``: ``training.steps`` and every stage's);
- ``diverged``: its last row has a NaN/inf loss (the trainer drops a run there);
- ``early_stop``: its last rows meet the early-stop rule (``training.early_stop``: both
  accuracies >= threshold for ``patience`` logged steps in a row, all in the last stage), where
  the trainer drops it.

and its rows are whole: every logged step (``schedule.logged_steps``) up to its last row is
there and none of its parts is unreadable. A run with a missing step or an unreadable part is
**damaged**: it is neither finished nor labelled, and ``grokgrid resume`` trains it again from
step 0. Anything else with rows is **started** (an interrupted pack); no rows at all, **pending**.

Pure pandas (no torch, no Ray): ``status`` runs this on a laptop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from grokgrid import stages
from grokgrid.schedule import logged_steps
from grokgrid.spec import SweepSpec
from grokgrid import store
from grokgrid.store import Unreadable, part_first_step

ENDS = ("complete", "diverged", "early_stop")


@dataclass(frozen=True)
class RunState:
    """What the rows on disk say about one run."""

    run_id: str
    steps_done: int  # the last logged step of its whole rows (0 with none); what a resume keeps
    end: str | None  # one of ENDS when finished, else None
    damage: str | None = None  # why its rows cannot be trusted (missing steps, unreadable part)
    has_rows: bool = False

    @property
    def finished(self) -> bool:
        return self.end is not None and self.damage is None

    @property
    def state(self) -> str:
        if self.damage is not None:
            return "damaged"
        if self.end is not None:
            return "done"
        return "started" if self.has_rows else "pending"


def _end(spec: SweepSpec, rows: pd.DataFrame) -> str | None:
    last = rows.iloc[-1]
    if int(last["step"]) >= spec.total_steps:
        return "complete"
    if not (math.isfinite(last["train_loss"]) and math.isfinite(last["val_loss"])):
        return "diverged"
    rule = spec.training.early_stop
    if rule is not None and len(rows) >= rule.patience:
        tail = rows.iloc[-rule.patience:]
        # The trainer counts only the last stage's rows (train._EarlyStop); the stage is a
        # function of the step (rows written before stages existed have no stage column).
        ends = stages.ends(spec)
        in_last = all(stages.stage_of_row(ends, int(s)) == len(ends) - 1 for s in tail["step"])
        if in_last and bool(((tail["train_acc"] >= rule.threshold) & (tail["val_acc"] >= rule.threshold)).all()):
            return "early_stop"
    return None


def assess_run(spec: SweepSpec, run_id: str, rows: pd.DataFrame, unreadable: Iterable[Unreadable] = (),
               logged: list[int] | None = None) -> RunState:
    """The state of one run from its rows (sorted by step, one per step) and its unreadable parts."""
    logged = logged_steps(spec) if logged is None else logged
    bad = [u for u in unreadable if u.run_id == run_id]
    if rows.empty:
        damage = f"unreadable metrics part {bad[0].path}" if bad else None
        return RunState(run_id, 0, None, damage, has_rows=False)
    steps = rows["step"].tolist()
    expected = logged[: len(steps)]
    if steps != expected:
        missing = next((e for s, e in zip(steps, expected) if s != e), None)
        where = f"step {missing}" if missing is not None else f"steps after {expected[-1]}"
        damage = f"its rows skip {where}" + (f" (unreadable part {bad[0].path})" if bad else "")
        return RunState(run_id, 0, None, damage, has_rows=True)
    damage = f"unreadable metrics part {bad[0].path}" if bad else None
    return RunState(run_id, int(steps[-1]), _end(spec, rows), damage, has_rows=True)


def assess(spec: SweepSpec, run_ids: Iterable[str], metrics: pd.DataFrame,
           unreadable: Iterable[Unreadable] = ()) -> dict[str, RunState]:
    """The state of every run in ``run_ids`` (``store.scan_metrics``'s two results)."""
    logged = logged_steps(spec)
    unreadable = list(unreadable)
    by_run = dict(tuple(metrics.groupby("run_id", sort=False))) if not metrics.empty else {}
    empty = metrics.iloc[0:0]
    return {r: assess_run(spec, r, by_run.get(r, empty), unreadable, logged) for r in run_ids}


def run_steps_done(spec: SweepSpec, states: Iterable[RunState]) -> int:
    """Run-steps that need no more training: a finished run counts all its steps (it has
    nothing left to do, even when it ended early), any other its last whole logged step."""
    total = spec.total_steps
    return sum(total if s.finished else min(s.steps_done, total) for s in states)


def whole_up_to(spec: SweepSpec, step: int, run_ids: Iterable[str], metrics: pd.DataFrame,
                unreadable: Iterable[Unreadable] = ()) -> list[str]:
    """The runs among ``run_ids`` whose rows on disk do not hold every logged step up to
    ``step`` (a checkpoint taken at ``step`` cannot continue them: rows it assumes are written
    are missing or unreadable). A run that ended before ``step`` needs its rows to its end."""
    early = metrics[metrics["step"] <= step]
    bad = [u for u in unreadable if (part_first_step(u.path) or 0) <= step]
    states = assess(spec, run_ids, early, bad)
    return [r for r, s in states.items() if s.damage is not None or not (s.finished or s.steps_done == step)]


@dataclass
class Survey:
    """What a results folder says about a sweep's runs: each run's state from its rows, the
    unreadable parts, and the runs table (None when absent or unreadable: ``table_problem``)."""

    states: dict[str, RunState]
    unreadable: list[Unreadable]
    table: pd.DataFrame | None
    table_problem: str | None = None
    metrics: pd.DataFrame | None = None  # the readable rows of the runs surveyed

    def ids(self, state: str) -> list[str]:
        return [r for r, s in self.states.items() if s.state == state]

    @property
    def finished(self) -> set[str]:
        return {r for r, s in self.states.items() if s.finished}

    @property
    def damaged(self) -> list[RunState]:
        return [s for s in self.states.values() if s.damage is not None]

    def recorded(self, column: str) -> dict[str, str]:
        """run_id -> a non-empty text column of the runs table (pack_id, status, node_id)."""
        if self.table is None or column not in self.table.columns:
            return {}
        return {r: v for r, v in zip(self.table["run_id"], self.table[column]) if isinstance(v, str) and v}


def survey(spec: SweepSpec, sweep_dir, run_ids: Iterable[str]) -> Survey:
    """Read the folder's metrics and runs table once and judge every run of ``run_ids``."""
    run_ids = list(run_ids)
    metrics, unreadable = store.scan_metrics(sweep_dir)
    wanted = set(run_ids)
    metrics = metrics[metrics["run_id"].isin(wanted)]
    unreadable = [u for u in unreadable if u.run_id in wanted]
    table, problem = None, None
    try:
        table = store.read_runs(sweep_dir)
    except FileNotFoundError:
        pass
    except store.DamagedFile as exc:
        problem = str(exc)
    return Survey(assess(spec, run_ids, metrics, unreadable), unreadable, table, problem, metrics)


def judge(spec: SweepSpec, sweep_dir, run_ids: Iterable[str]) -> dict[str, RunState]:
    """The state of a few runs (one pack's), reading only their metrics."""
    run_ids = list(run_ids)
    metrics, unreadable = store.scan_metrics(sweep_dir, run_ids)
    return assess(spec, run_ids, metrics, unreadable)
