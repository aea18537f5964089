"""The sweep driver: train a spec's runs (or an interrupted sweep's unfinished ones) as Ray Tune
trials, keep the results folder's runs table true to the rows on disk, and stop gracefully on
Ctrl-C or SIGTERM.

The CLI and Python callers share this (``grokgrid.run_sweep`` / ``grokgrid.resume_sweep``). It
speaks through a :class:`Reporter` (plain lines by default; the CLI draws a rich progress bar)
and answers bad input with ``Refused`` before anything is written. Ray is imported only once a
sweep has runs to train (sweep.py), torch only to count a model's parameters (train.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import pandas as pd

from grokgrid import __version__, completion, folder, grid, interrupts, plan, store
from grokgrid.refusal import Refused
from grokgrid.spec import SweepSpec
from grokgrid.location import Location

CONNECT_TIMEOUT_S = 10.0


class Reporter:
    """What a sweep says while it runs. This one prints plain lines (a notebook's output); the
    CLI's draws a progress bar. ``training`` yields ``update(run_steps_done, runs_done)``."""

    def say(self, text: str, alarm: bool = False) -> None:
        print(text, file=sys.stderr if alarm else sys.stdout, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {' '.join(text.split())}", file=sys.stderr, flush=True)

    @contextmanager
    def training(self, n_runs: int, run_steps: int) -> Iterator[Callable[[int, int], None]]:
        shown = [-1]

        def update(done_steps: int, done_runs: int) -> None:
            if done_runs != shown[0]:
                shown[0] = done_runs
                self.say(f"training: {done_runs}/{n_runs} runs done, {done_steps:,}/{run_steps:,} run-steps")

        yield update

    def classified(self, labels, criteria, unfinished: int, runs: int, sweep_dir: Location, target: Location) -> None:
        """The labels were written to ``target``; ``unfinished`` runs' labels are provisional."""
        from grokgrid import phases

        self.say(f"phases (threshold {criteria.threshold:g}, gap {criteria.gap}, budget {criteria.budget or 'all steps'}):")
        for phase, count in phases.phase_counts(labels).items():
            self.say(f"  {phase}: {count}")
        if unfinished:
            self.say(unfinished_note(unfinished, runs, sweep_dir))
        self.say(f"labels: {target}")

    def verified(self, verification) -> None:
        """The verdicts of the sweep's claims (api.Verification)."""
        for line in verification_lines(verification):
            self.say(line)

    def reported(self, path, sweep_dir: Location) -> None:
        self.say(f"report: {path}")
        if not isinstance(path, os.PathLike):  # under a URI: say how to get a copy to open
            self.say(f"(to open it here: `grokgrid report {sweep_dir} --out report.html`)")


class Quiet(Reporter):
    """Says nothing (warnings and alarms still go to stderr)."""

    def say(self, text: str, alarm: bool = False) -> None:
        if alarm:
            super().say(text, alarm)


def verification_lines(verification) -> list[str]:
    """A PASS or FAIL line per claim, a summary, and a note while runs are unfinished."""
    lines = [v.line() for v in verification.verdicts]
    failed = sum(not v.passed for v in verification.verdicts)
    lines.append(f"claims: {len(verification.verdicts) - failed} passed, {failed} failed")
    if verification.unfinished:
        lines.append(f"note: {verification.unfinished} of {verification.runs} runs are unfinished: the verdicts are "
                     f"provisional until `grokgrid resume {verification.sweep_dir}` finishes them")
    return lines


def unfinished_note(unfinished: int, runs: int, sweep_dir: Location) -> str:
    return (f"note: {unfinished} of {runs} runs are unfinished: their labels are provisional "
            f"until `grokgrid resume {sweep_dir}` finishes them")


class SweepInterrupted(interrupts.Interrupted):
    """A signal stopped the sweep. ``unfinished``: runs left (None when unknown); ``after_work``:
    the signal came during the last clean-up, when nothing was left to cut short."""

    def __init__(self, signum: int, sweep_dir: Location, unfinished: int | None, after_work: bool):
        super().__init__(signum)
        self.sweep_dir, self.unfinished, self.after_work = sweep_dir, unfinished, after_work


# ----------------------------------------------------------------------------- before Ray


def with_resources(spec: SweepSpec, cpus_per_trial: float | None = None, gpus_per_trial: float | None = None) -> SweepSpec:
    """The spec with the caller's per-trial resources (None: keep the spec's)."""
    if cpus_per_trial is not None and not (cpus_per_trial > 0 and math.isfinite(cpus_per_trial)):
        raise Refused(f"--cpus-per-trial: must be a finite number > 0, got {cpus_per_trial:g}; give e.g. 1")
    if gpus_per_trial is not None and not (gpus_per_trial >= 0 and math.isfinite(gpus_per_trial)):
        raise Refused(f"--gpus-per-trial: must be a finite number >= 0, got {gpus_per_trial:g}; "
                      "give e.g. 0.25 (four packs per GPU)")
    resources = dataclasses.replace(
        spec.resources,
        cpus_per_trial=spec.resources.cpus_per_trial if cpus_per_trial is None else cpus_per_trial,
        gpus_per_trial=spec.resources.gpus_per_trial if gpus_per_trial is None else gpus_per_trial,
    )
    return dataclasses.replace(spec, resources=resources)


def local_slots(spec: SweepSpec, address: str | None, num_cpus: int | None) -> int | None:
    """Trial slots of the local Ray a sweep would start (None: a cluster's, or GPUs, which are
    only known once Ray is up)."""
    if address or os.environ.get("RAY_ADDRESS") or spec.resources.gpus_per_trial > 0:
        return None
    cpus = num_cpus or os.cpu_count() or 1
    slots = int(cpus / spec.resources.cpus_per_trial)
    if spec.resources.max_concurrent is not None:
        slots = min(slots, spec.resources.max_concurrent)
    return max(1, slots)


def make_plan(spec: SweepSpec, *, runs_left: int | None = None, slots: int | None = None, pack_size: int | None = None,
              packs: int | None = None) -> plan.Plan:
    from grokgrid import train  # builds one run's model to count its parameters

    return plan.make_plan(spec, runs_left=runs_left, slots=slots, pack_size=pack_size,
                          parameters_per_run=train.parameters_per_run(spec), packs=packs)


# Beyond this many (training fraction, seed) splits, the note below and the labels' reasons
# (api._with_capped_splits) are not worked out: each split costs about a millisecond
# (toy_addition at p = 10).
MAX_SPLITS_CHECKED = 2_000


def splits_worth_checking(spec: SweepSpec) -> bool:
    """Whether a split that determines too few validation pairs caps this sweep's runs (the
    model sees a pair only through E_i + E_j: ModelSpec.sums_operands), and the grid has few
    enough splits to work them out (MAX_SPLITS_CHECKED)."""
    pairs = len(spec.grid.train_fraction) * len(spec.grid.seed)
    return spec.model.sums_operands and pairs <= MAX_SPLITS_CHECKED


def split_note(spec: SweepSpec) -> str | None:
    """A line saying how many of the grid's splits cap val accuracy below the phase threshold
    whatever the learning rates (a task that can tell: toy_addition), or None."""
    if not splits_worth_checking(spec):
        return None
    fractions, seeds = spec.grid.train_fraction, spec.grid.seed
    threshold = spec.phases.threshold
    counts = [variant.task.capped_splits(fractions, seeds, threshold) for variant in spec.variants()]
    capped = sum(c for c in counts if c)
    if not capped:
        return None
    total = len(fractions) * len(seeds) * len(counts)
    return (f"note: {capped} of the {total} (training fraction, seed) splits determine fewer than {threshold:.0%} of "
            f"their validation pairs (Liu's ideal accuracy), so by Liu's effective theory their runs stay below val "
            f"accuracy {threshold:g} at any learning rate; task.split: determined trains every run on a split that "
            "determines them all")


def large_sweep(spec: SweepSpec, address: str | None = None, num_cpus: int | None = None,
                pack_size: int | None = None) -> plan.Plan | None:
    """The plan of a sweep too large to start without a yes (plan.CONFIRM_RUNS runs or
    plan.CONFIRM_HOURS by the estimate), else None."""
    estimate = make_plan(spec, slots=local_slots(spec, address, num_cpus), pack_size=pack_size)
    return estimate if estimate.needs_confirmation() else None


def dry_run(spec: SweepSpec, sweep_dir: Location, address: str | None = None, num_cpus: int | None = None,
            pack_size: int | None = None, overwrite: bool = False) -> list[str]:
    """What a sweep would do, in lines; starts no Ray and writes nothing."""
    left = None
    if not overwrite and folder.is_sweep(sweep_dir):
        left = grid.count(spec) - len(folder.survey(spec, sweep_dir).finished)
    estimate = make_plan(spec, runs_left=left, slots=local_slots(spec, address, num_cpus), pack_size=pack_size)
    lines = [f"plan: {estimate.describe()}"]
    note = split_note(spec)
    if note is not None:
        lines.append(note)
    refine = spec.refine
    if refine is not None and refine.rounds_done < refine.rounds:
        cap = f", at most {refine.max_runs:,} runs in all" if refine.max_runs is not None else ""
        lines.append(f"then up to {refine.rounds - refine.rounds_done} refinement round(s) along {', '.join(refine.axes)}{cap}: "
                     "their runs depend on the labels (`grokgrid refine RESULTS --dry-run` shows the next round's)")
    if estimate.packs is None:
        lines.append("(packs and time depend on the cluster's resources, known once Ray is reached)")
    lines.append(f"results would go to {sweep_dir}" + ("; it already holds this sweep" if left is not None else ""))
    if estimate.needs_confirmation():
        lines.append("a sweep this large asks for confirmation (or --yes) before it starts")
    lines.append("dry run: nothing started, nothing written")
    return lines


# ----------------------------------------------------------------------------- holding a folder


class Driver:
    """One driver's hold on a results folder: its lock, taken before Ray starts, and on the way
    out the Ray it started stopped, the lock released and a folder it created removed if
    nothing was written."""

    def __init__(self, sweep_dir: Location, reporter: Reporter):
        self.sweep_dir, self.reporter = sweep_dir, reporter
        self.created = folder.missing_folders(sweep_dir)  # made by the lock below; removed again if left empty
        self.lock = folder.lock(sweep_dir)
        self.tune_sweep = None  # the sweep module once Ray is up
        self.started_ray = False  # False when joining a Ray this process already had (tests)

    def stop_ray(self) -> None:
        if self.tune_sweep is not None and self.started_ray:
            self.tune_sweep.disconnect()
            self.started_ray = False
            interrupts.reclaim()  # in case Ray's shutdown put its own SIGINT/SIGTERM handlers back

    def close(self) -> None:
        with interrupts.deferred():  # a signal now waits for the lock to be released
            self.stop_ray()
            self.lock.release()
            for made in self.created:  # innermost first
                if made.is_dir() and not any(made.iterdir()):
                    made.rmdir()


def drive(sweep_dir: Location, spec: SweepSpec, reporter: Reporter, work: Callable[[Driver], None]) -> None:
    """Run ``work(driver)`` holding the folder's lock, with Ctrl-C and SIGTERM handled: the
    first signal stops the sweep gracefully and raises SweepInterrupted once the runs that
    finished are recorded (also when the signal came during the last clean-up)."""
    with interrupts.handled():
        driver = Driver(sweep_dir, reporter)
        unfinished: int | None = None
        completed = False
        try:
            work(driver)
            completed = True
        except interrupts.Interrupted:
            unfinished = _record_interrupt(driver, spec)
        finally:
            driver.close()
        signum = interrupts.requested()
    if signum is not None:
        raise SweepInterrupted(signum, sweep_dir, unfinished, after_work=completed)


def _record_interrupt(driver: Driver, spec: SweepSpec) -> int | None:
    """After Ctrl-C or SIGTERM: stop the trials, then record from the data which runs finished;
    returns how many did not (None when unknown). A second signal here stops at once: the folder
    is resumable as it is, since runs.parquet never calls a run done before its rows are whole."""
    sweep_dir = driver.sweep_dir
    try:
        driver.stop_ray()  # no trial of ours writes a row after this (a joined cluster drops them too)
        if not (sweep_dir / store.RUNS_FILE).is_file():
            return None
        # The folder's spec, which holds any refinement round recorded since the sweep started.
        found = folder.survey(folder.frozen_spec(sweep_dir) if (sweep_dir / store.SPEC_FILE).is_file() else spec, sweep_dir)
        if found.table is not None:
            table = found.table.copy()
            finished = table["run_id"].isin(found.finished)
            table.loc[finished, "status"] = "done"
            table.loc[~finished & (table["status"] == "done"), "status"] = "pending"
            store.write_runs(sweep_dir, table)
        return len(found.states) - len(found.finished)
    except interrupts.Interrupted:
        return None


# ----------------------------------------------------------------------------- Ray


def connect(reporter: Reporter, address: str | None, num_cpus: int | None, timeout: float = CONNECT_TIMEOUT_S):
    """Start (or join) Ray; returns the sweep module (Ray is imported only when a sweep runs)
    and whether this call connected (False: this process had Ray up already)."""
    from grokgrid import sweep as tune_sweep

    target = address or os.environ.get("RAY_ADDRESS")
    reporter.say("starting a local Ray..." if not target else f"joining Ray at {target}...")
    option = "--address" if address else "RAY_ADDRESS"
    try:
        started = tune_sweep.connect(address=address, num_cpus=num_cpus, timeout=timeout)
    except tune_sweep.ClusterUnusable as exc:
        raise Refused(f"{option} {target}: {exc}; check the address (or --connect-timeout), "
                      f"or drop {option} to start a local Ray") from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise Refused(f"{option} {target}: cannot reach a Ray cluster ({' '.join(str(exc).split())}); "
                      f"check the address or drop {option}") from None
    return tune_sweep, started


def check_resources(tune_sweep, spec: SweepSpec) -> None:
    try:
        tune_sweep.check_resources(spec.resources)
    except tune_sweep.ClusterUnusable as exc:
        raise Refused(f"{exc}: no trial could ever start; lower it in the spec or with --cpus-per-trial / "
                      "--gpus-per-trial, or use a cluster with such a node") from None


def pack_size_for(tune_sweep, spec: SweepSpec, n_runs: int, pack_size: int | str | None) -> int:
    """Runs per pack: ``pack_size`` (default: the spec's); "auto" sizes packs to the cluster's
    trial slots (Ray must be up) and the model."""
    from grokgrid import train

    size = pack_size or spec.resources.pack_size
    if size == "auto":
        slots = tune_sweep.parallel_slots(spec.resources)
        size = grid.auto_pack_size(n_runs, slots, spec.resources.gpus_per_trial > 0, train.parameters_per_run(spec))
    return int(size)


def make_packs(tune_sweep, spec: SweepSpec, todo: list[grid.RunConfig], pack_size: int | str | None) -> tuple[list[grid.Pack], int]:
    """The runs in packs of ``pack_size_for``; returns the packs and the size used."""
    size = pack_size_for(tune_sweep, spec, len(todo), pack_size)
    return grid.pack(todo, size), size


def regroup(todo: list[grid.RunConfig], pack_of: dict[str, str]) -> tuple[list[grid.Pack], list[grid.RunConfig]]:
    """The packs the runs were trained in (from runs.parquet), so that their checkpoints match;
    returns those packs and the runs that had none (packed afresh by the caller). A pack whose
    members no longer hash to its id (a damaged table, or some of its runs already done) is
    rebuilt under its members' own id."""
    members: dict[str, list[grid.RunConfig]] = {}
    fresh = []
    for run in todo:  # expansion order, which is the order grid.pack put them in
        pack_id = pack_of.get(run.run_id)
        if pack_id:
            members.setdefault(pack_id, []).append(run)
        else:
            fresh.append(run)
    packs = []
    for pack_id, runs in members.items():
        rebuilt = grid.pack(runs, len(runs))[0]
        packs.append(rebuilt if rebuilt.pack_id != pack_id else grid.Pack(pack_id=pack_id, runs=tuple(runs)))
    return packs, fresh


# ----------------------------------------------------------------------------- training


def train_unfinished(driver: Driver, spec: SweepSpec, address: str | None = None, num_cpus: int | None = None,
                     timeout: float = CONNECT_TIMEOUT_S, pack_size: int | None = None, *, resume: bool) -> None:
    """Train the runs not finished (judged from their rows on disk) and record every run's state."""
    sweep_dir, say = driver.sweep_dir, driver.reporter.say
    runs = grid.expand(spec)
    found = folder.survey(spec, sweep_dir)
    if found.table_problem:
        driver.reporter.warn(f"{found.table_problem}; it is rebuilt from the spec and the metrics on disk")
    for state in found.damaged[:5]:
        driver.reporter.warn(f"run {state.run_id}: {state.damage}; it is trained again from step 0")
    if len(found.damaged) > 5:
        driver.reporter.warn(f"... and {len(found.damaged) - 5} more damaged runs, each trained again from step 0")
    done = found.finished
    todo = [r for r in runs if r.run_id not in done]
    if resume:
        say(f"grokgrid {__version__} resume {spec.name}: {len(runs):,} runs, {len(done):,} done, {len(todo):,} to finish")
    elif done:
        say(f"{len(done):,} runs already done in {sweep_dir}; {len(todo):,} left to run")
    previous, nodes = found.recorded("pack_id"), found.recorded("node_id")
    node_of = {r: n for r, n in nodes.items() if r in done}
    if not todo:
        folder.write_tables(spec, sweep_dir, runs, previous, {r: "done" for r in done}, node_of)  # new criteria, a rebuilt table
        folder.prune_checkpoints(sweep_dir)  # left by a sweep stopped between its last run and its clean-up
        store.compact_runs(sweep_dir, done)  # a folder from before compaction, or stopped before it
        say(f"nothing left to run: all {len(runs):,} runs are done; results in {sweep_dir}")
        return
    started = time.perf_counter()
    driver.tune_sweep, driver.started_ray = connect(driver.reporter, address, num_cpus, timeout)
    tune_sweep = driver.tune_sweep
    check_resources(tune_sweep, spec)
    if resume:
        packs, fresh = regroup(todo, previous)
        packs += make_packs(tune_sweep, spec, fresh, None)[0] if fresh else []
        message = f"{len(todo):,} runs in {len(packs):,} packs; each continues from its last checkpoint"
    else:
        packs, size = make_packs(tune_sweep, spec, todo, pack_size)
        size = max(len(p.runs) for p in packs)  # below the cap when field axes split the runs into groups
        message = f"{len(todo):,} runs in {len(packs):,} packs of up to {size} (one Ray Tune trial each)"
    pack_of = {**previous, **{r.run_id: p.pack_id for p in packs for r in p.runs}}
    table = folder.write_tables(spec, sweep_dir, runs, pack_of, {r: "done" for r in done}, node_of)
    say(message)
    estimate = make_plan(spec, runs_left=len(todo), slots=tune_sweep.parallel_slots(spec.resources),
                         pack_size=max(len(p.runs) for p in packs), packs=len(packs))
    say(f"plan: {estimate.describe()}")
    note = split_note(spec) if not resume else None  # said when the sweep started
    if note is not None:
        say(note)
    _train(driver, spec, packs, table, restore=resume, started=started)


def _train(driver: Driver, spec: SweepSpec, packs: list[grid.Pack], table: pd.DataFrame, *, restore: bool, started: float) -> None:
    sweep_dir, say = driver.sweep_dir, driver.reporter.say
    failed = _launch(driver, spec, packs, table, restore=restore)
    left = _unfinished_packs(packs, table)
    if left and restore:
        # Tune's restored state called these packs finished, but their rows on disk are not
        # whole (damaged since): train them again, afresh.
        say(f"{len(left)} pack(s) are not finished on disk; training them again")
        failed = _launch(driver, spec, left, table, restore=False)
        left = _unfinished_packs(left, table)
    if failed:
        say(f"{failed} run(s) failed; their status is 'failed' in {sweep_dir / store.RUNS_FILE}; "
            f"`grokgrid resume {sweep_dir}` tries them again", alarm=True)
    if left:
        n = sum(len(p.runs) for p in left)
        say(f"{n} run(s) ended without all their rows on disk; `grokgrid resume {sweep_dir}` trains them again", alarm=True)
    elif (table["status"] == "done").all():
        folder.prune_checkpoints(sweep_dir)
    say(f"trained in {time.perf_counter() - started:.1f} s; results in {sweep_dir}")


def _unfinished_packs(packs: list[grid.Pack], table: pd.DataFrame) -> list[grid.Pack]:
    """Packs with a run neither done nor failed (judged from the data by the launch)."""
    status = dict(zip(table["run_id"], table["status"]))
    return [p for p in packs if any(status.get(r.run_id) == "pending" for r in p.runs)]


def _launch(driver: Driver, spec: SweepSpec, packs: list[grid.Pack], table: pd.DataFrame, *, restore: bool = False) -> int:
    """Train the packs with progress (in run-steps); keep runs.parquet's status current.

    A run is marked done only when its rows on disk are whole to its end (completion.py), never
    because Ray reported no error; a failed pack's unfinished runs are marked failed; anything
    else stays pending. Returns how many runs failed.

    restore: continue Tune's saved experiment (``sweep.resume``) when it holds these packs, else
    launch them afresh (each pack still continues from its results-folder checkpoint)."""
    tune_sweep, sweep_dir, reporter = driver.tune_sweep, driver.sweep_dir, driver.reporter
    size_of = {p.pack_id: len(p.runs) for p in packs}
    reached = {p.pack_id: 0 for p in packs}
    finished_packs: set[str] = set()
    n_runs = sum(size_of.values())
    with reporter.training(n_runs, n_runs * spec.total_steps) as update:

        def show() -> None:
            update(sum(size_of[p] * s for p, s in reached.items()), sum(size_of[p] for p in finished_packs))

        def advance(pack_id: str, step: int) -> None:
            if pack_id not in reached:  # a trial of Tune's state that finished before the restore
                return
            reached[pack_id] = max(reached[pack_id], step)
            show()

        def record(outcome) -> None:
            if interrupts.requested() is not None:
                return  # trials stopped by an interrupt end as "errors" or "complete": neither is true
            states = completion.judge(spec, sweep_dir, outcome.run_ids)
            # The pack is done: its finished runs' parts become one file each (no trial writes them now).
            store.compact_runs(sweep_dir, [r for r, state in states.items() if state.finished])
            members = table["run_id"].isin(outcome.run_ids)
            table.loc[members, "status"] = [
                "done" if states[r].finished else ("failed" if not outcome.ok else "pending") for r in table.loc[members, "run_id"]
            ]
            if outcome.node_id:
                table.loc[members, "node_id"] = outcome.node_id
            if outcome.pack_id in size_of:
                finished_packs.add(outcome.pack_id)

        def on_pack_done(outcome) -> None:
            record(outcome)
            store.write_runs(sweep_dir, table)
            if interrupts.requested() is not None:
                return
            if not outcome.ok:
                reporter.say(f"pack {outcome.pack_id} failed: {outcome.error}", alarm=True)
            elif outcome.restored_from_step is not None:
                reporter.say(f"pack {outcome.pack_id} resumed from step {outcome.restored_from_step} and finished")
            advance(outcome.pack_id, spec.total_steps)

        outcomes = None
        if restore:
            try:
                outcomes = tune_sweep.resume(spec, sweep_dir, packs, on_progress=advance, on_pack_done=on_pack_done)
            except tune_sweep.TuneStateUnusable as exc:
                reporter.say(f"not restoring Tune's state ({exc}); relaunching the packs from their checkpoints")
        if outcomes is None:
            outcomes = tune_sweep.launch(spec, sweep_dir, packs, on_progress=advance, on_pack_done=on_pack_done)
    # Trials that finished before a restore (their end never reached this driver) and any
    # event missed above: the outcomes and the data are the final word on every pack.
    for outcome in (o for o in outcomes if o.pack_id in size_of):
        record(outcome)
    store.write_runs(sweep_dir, table)
    in_packs = table["run_id"].isin([r.run_id for p in packs for r in p.runs])
    return int((in_packs & (table["status"] == "failed")).sum())
