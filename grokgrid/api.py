"""grokgrid as a Python library: run, resume, inspect, classify, verify and report sweeps.

Everything the CLI does is here, for notebooks and scripts (re-exported from ``grokgrid``)::

    import grokgrid
    s = grokgrid.open("results/quickstart")
    s.labels                      # one row per run: phase, detail, t_train, t_val, ...
    s.curves(s.runs.run_id[0])    # one run's per-step metrics, indexed by step
    grokgrid.run_sweep("sweeps/quickstart.yaml", results="results")

Bad input raises ``Refused`` (one line naming the field and the fix; nothing written). A
sweep stopped by Ctrl-C raises ``SweepInterrupted`` (a KeyboardInterrupt) once the runs that
finished are recorded; ``resume_sweep`` continues it. The CLI is a thin layer over these.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from grokgrid import completion, driver, folder, grid, phases, store
from grokgrid import verdicts as verdicts_of
from grokgrid.lock import Holder
from grokgrid.lock import holder as lock_holder
from grokgrid.refusal import Refused
from grokgrid.spec import SpecError, SweepSpec, load_spec, spec_from_dict
from grokgrid.location import Location, as_location

PathLike = str | os.PathLike | Location
STATES = ("done", "started", "pending", "failed", "damaged")


# ----------------------------------------------------------------------------- reading a sweep


class Sweep:
    """A results folder opened for reading: its spec, runs table, labels, metrics and curves.
    Tables are read when asked for (a large sweep's metrics stay on disk until then)."""

    def __init__(self, path: PathLike):
        self.path = folder.existing(path)
        self.spec: SweepSpec = folder.frozen_spec(self.path)

    def __repr__(self) -> str:
        return f"grokgrid.Sweep({str(self.path)!r}: {self.spec.name})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def runs(self) -> pd.DataFrame:
        """runs.parquet: run_id, pack_id, the hyperparameters, status (a record: see status())."""
        return store.read_runs(self.path)

    @property
    def labels(self) -> pd.DataFrame | None:
        """labels.parquet (None before ``classify``)."""
        try:
            return store.read_labels(self.path)
        except FileNotFoundError:
            return None

    def metrics(self, run_ids: str | list[str] | None = None) -> pd.DataFrame:
        """The per-step rows of every run (or of ``run_ids``), sorted by (run_id, step).
        Refused when one of them is unreadable: no number is computed from partial rows."""
        ids = [run_ids] if isinstance(run_ids, str) else run_ids
        frame, unreadable = store.scan_metrics(self.path, ids)
        if unreadable:
            raise Refused(f"{unreadable[0].describe()}; `grokgrid resume {self.path}` trains the damaged run(s) again")
        return frame

    def curves(self, run_id: str) -> pd.DataFrame:
        """One run's metrics indexed by step (train/val loss and accuracy, norms, ...)."""
        rows = self.metrics(run_id)
        if rows.empty:
            raise Refused(f"run {run_id}: no rows in {self.path}; give a run_id of this sweep's runs table")
        return rows.drop(columns="run_id").set_index("step")

    def status(self) -> "Status":
        return status(self.path)

    def classify(self, out: PathLike | None = None, **overrides) -> pd.DataFrame:
        return classify(self.path, out=out, **overrides)

    def report(self, axes: tuple[str, str] | None = None, facet: str | None = None, out: PathLike | None = None):
        return report(self.path, axes=axes, facet=facet, out=out)

    def figure(self, kind: str = "phase", axes: tuple[str, str] | str | None = None, facet: str | None = None,
               out: PathLike | None = None, **options):
        return figure(self.path, kind, axes=axes, facet=facet, out=out, **options)

    def track(self, to: str | list[str]):
        return track(self.path, to)


def open(results: PathLike) -> Sweep:  # noqa: A001 - grokgrid.open reads like the builtin on purpose
    """Open a sweep's results folder (a local path or a filesystem URI) for reading."""
    return Sweep(results)


# ----------------------------------------------------------------------------- running a sweep


def load(spec: PathLike | Mapping | SweepSpec) -> SweepSpec:
    """A spec from a YAML file, a mapping (a spec's YAML as a dict) or a SweepSpec."""
    try:
        if isinstance(spec, SweepSpec):
            return spec
        if isinstance(spec, Mapping):
            return spec_from_dict(dict(spec))
        return load_spec(Path(spec))
    except SpecError as exc:
        raise Refused(str(exc)) from None


def run_sweep(spec: PathLike | Mapping | SweepSpec, results: PathLike = "results", *, overwrite: bool = False,
              report: bool = True, address: str | None = None, num_cpus: int | None = None,
              cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
              pack_size: int | None = None, connect_timeout: float = driver.CONNECT_TIMEOUT_S,
              yes: bool = False, reporter: driver.Reporter | None = None, log_to: Sequence[str] | None = None) -> Sweep:
    """Train every run of ``spec`` not already done in ``results/<name>`` as Ray Tune trials
    (local Ray, or the cluster at ``address``), then classify and report; returns the sweep.
    ``log_to``: trackers to send the labelled runs to at the end (``track``'s targets, e.g.
    ["mlflow", "tensorboard=tb"]), checked before anything trains.

    A sweep large enough to ask for confirmation (plan.CONFIRM_RUNS runs or CONFIRM_HOURS)
    is refused unless ``yes``."""
    targets = check_log_to(log_to, report)
    spec = folder.ready_to_train(driver.with_resources(load(spec), cpus_per_trial, gpus_per_trial))
    sweep_dir = folder.location("--storage", str(results)) / spec.name
    folder.check_new_sweep(spec, sweep_dir, overwrite)
    if not yes:
        large = driver.large_sweep(spec, address, num_cpus, pack_size)
        if large is not None:
            raise Refused(f"this sweep is large: {large.describe()}; pass --yes to start it, or --dry-run to see its plan")
    reporter = reporter or driver.Reporter()

    if not overwrite:
        spec = folder.with_recorded_rounds(spec, sweep_dir)

    def work(held: driver.Driver) -> None:
        if overwrite:
            folder.clear(sweep_dir)
        _train_refine_report(held, spec, address, num_cpus, connect_timeout, pack_size, resume=False, report=report)

    driver.drive(sweep_dir, spec, reporter, work)
    _log_runs(sweep_dir, targets, reporter)
    return Sweep(sweep_dir)


def resume_sweep(results: PathLike, *, report: bool = True, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
                 connect_timeout: float = driver.CONNECT_TIMEOUT_S, reporter: driver.Reporter | None = None,
                 log_to: Sequence[str] | None = None) -> Sweep:
    """Finish an interrupted sweep: every run not done continues from its pack's last
    checkpoint (a damaged run from step 0); then classify and report (and send the runs to
    the trackers of ``log_to``, as ``run_sweep``)."""
    targets = check_log_to(log_to, report)
    sweep_dir = folder.existing(results)
    spec = folder.ready_to_train(driver.with_resources(folder.frozen_spec(sweep_dir), cpus_per_trial, gpus_per_trial))
    reporter = reporter or driver.Reporter()

    def work(held: driver.Driver) -> None:
        _train_refine_report(held, spec, address, num_cpus, connect_timeout, None, resume=True, report=report)

    driver.drive(sweep_dir, spec, reporter, work)
    _log_runs(sweep_dir, targets, reporter)
    return Sweep(sweep_dir)


def check_log_to(log_to: Sequence[str] | str | None, report: bool) -> list:
    """The trackers a sweep will send its runs to (tracking.Target), checked, and their
    packages importable, before anything trains: a missing package found after hours of
    training would be found too late."""
    if not log_to:
        return []
    from grokgrid import tracking

    if not report:
        raise Refused("--log-to sends the labelled runs, and --no-report skips the labels; drop --no-report, "
                      "or run `grokgrid track RESULTS --to ...` after `grokgrid classify`")
    return tracking.parse_targets([log_to] if isinstance(log_to, str) else log_to, "--log-to")


def _log_runs(sweep_dir: Location, targets: list, reporter: driver.Reporter) -> None:
    """The end of a sweep with --log-to: the labelled runs to each tracker. The sweep itself is
    done and recorded by now; a tracker that fails says how to send the runs again."""
    for target in targets:
        try:
            _track(sweep_dir, target, reporter)
        except Refused as exc:
            raise Refused(f"the sweep is done and labelled, but sending it failed: {exc}; "
                          f"`grokgrid track {sweep_dir} --to {target}` tries again") from None


# ----------------------------------------------------------------------------- refinement


def refine_sweep(results: PathLike, *, rounds: int | None = None, max_runs: int | None = None,
                 axes: tuple[str, ...] | str | None = None, report: bool = True, address: str | None = None,
                 num_cpus: int | None = None, cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
                 connect_timeout: float = driver.CONNECT_TIMEOUT_S, reporter: driver.Reporter | None = None,
                 log_to: Sequence[str] | None = None) -> Sweep:
    """Refine a sweep's phase diagram where its labels change (refine.py): ``rounds`` more
    rounds (default: the spec's ``refine.rounds`` left, else 1), each adding runs in the cells
    whose corners disagree, trained and labelled before the next; ``axes`` (one or two; default
    the spec's, else the first two swept axes) and ``max_runs`` (a cap on all rounds' runs)
    set or change the spec's ``refine`` section, which the folder's spec then records with each
    round's points. Unfinished runs are finished first. A kill at any point resumes with
    ``resume_sweep``: the recorded rounds' runs are part of the spec, and the rounds left run.
    ``log_to``: trackers to send the labelled runs to at the end, as ``run_sweep``."""
    targets = check_log_to(log_to, report)
    sweep_dir = folder.existing(results)
    spec = _with_refine_request(folder.frozen_spec(sweep_dir), rounds, max_runs, axes)
    spec = folder.ready_to_train(driver.with_resources(spec, cpus_per_trial, gpus_per_trial))
    reporter = reporter or driver.Reporter()

    def work(held: driver.Driver) -> None:
        _train_refine_report(held, spec, address, num_cpus, connect_timeout, None, resume=True, report=report)

    driver.drive(sweep_dir, spec, reporter, work)
    _log_runs(sweep_dir, targets, reporter)
    return Sweep(sweep_dir)


def refine_plan(results: PathLike, *, max_runs: int | None = None, axes: tuple[str, ...] | str | None = None) -> list[dict[str, float]]:
    """The points the next refinement round would add (each trains one run per seed), from the
    labels of the runs on disk; trains and writes nothing. Refused while runs are unfinished."""
    from grokgrid import refine

    sweep_dir = folder.existing(results)
    spec = _with_refine_request(folder.frozen_spec(sweep_dir), 1, max_runs, axes)
    found = folder.survey(spec, sweep_dir)
    _refuse_damaged(found, sweep_dir, "refinement rounds")
    if len(found.finished) < len(found.states):
        raise Refused(f"{len(found.states) - len(found.finished)} run(s) of {sweep_dir} are unfinished: a round is "
                      f"planned from finished runs' labels; `grokgrid resume {sweep_dir}` first")
    labels = phases.classify(found.metrics, criteria(spec))
    return refine.propose(spec, grid.expand(spec), dict(zip(labels["run_id"], labels["phase"])))


def _with_refine_request(spec: SweepSpec, rounds: int | None, max_runs: int | None, axes) -> SweepSpec:
    """The spec with its ``refine`` section set by a refine command's options, checked as a
    spec's: ``rounds`` more rounds than those done (None: the section's, or one)."""
    if isinstance(axes, str):
        axes = tuple(a.strip() for a in axes.split(",") if a.strip())
    current = spec.refine
    if current is not None and current.points and axes is not None and tuple(axes) != current.axes:
        raise Refused(f"this sweep was refined along {', '.join(current.axes)}; refine it further along those "
                      "(or start a sweep of another name to refine other axes)")
    if axes is None:
        axes = current.axes if current is not None else tuple(_default_refine_axes(spec))
    done = current.rounds_done if current is not None else 0
    total = done + rounds if rounds is not None else (current.rounds if current is not None and current.rounds > done else done + 1)
    data = spec.to_dict()
    data["refine"] = {"axes": list(axes), "rounds": total,
                      "max_runs": max_runs if max_runs is not None else (current.max_runs if current is not None else None),
                      **({"points": data["refine"]["points"]} if current is not None and current.points else {})}
    try:
        return spec_from_dict(data)
    except SpecError as exc:
        raise Refused(str(exc).replace("refine.axes", "--axes", 1).replace("refine.rounds", "--rounds", 1)
                      .replace("refine.max_runs", "--max-runs", 1)) from None


def _default_refine_axes(spec: SweepSpec) -> list[str]:
    swept = [a for a in spec.grid.refinable() if len(spec.grid.values(a)) > 1]
    if not swept:
        raise Refused("the grid sweeps no axis that can be refined (a numeric per-run axis with two values or more); "
                      "sweep one, or name it with --axes")
    return swept[:2]


def _refine_rounds(held: driver.Driver, sweep_dir: Location, spec: SweepSpec, address: str | None, num_cpus: int | None,
                   connect_timeout: float, reporter: driver.Reporter) -> SweepSpec:
    """Run the refinement rounds the spec asks for and has not done; returns the spec with them
    recorded. Each round is planned from the labels of every finished run, recorded in the
    folder's spec, then trained (train_unfinished); a round that finds no disagreeing cell, or
    no run budget left, records itself and the rounds after it as empty."""
    from grokgrid import refine

    while spec.refine is not None and spec.refine.rounds_done < spec.refine.rounds:
        found = folder.survey(spec, sweep_dir)
        _refuse_damaged(found, sweep_dir, "refinement rounds")
        if len(found.finished) < len(found.states):  # a failed pack: its runs have no label to refine from
            reporter.warn(f"refinement stopped: {len(found.states) - len(found.finished)} run(s) unfinished; "
                          f"`grokgrid resume {sweep_dir}` trains them and goes on refining")
            return spec
        labels = phases.classify(found.metrics, criteria(spec))
        points = refine.propose(spec, grid.expand(spec), dict(zip(labels["run_id"], labels["phase"])))
        number = spec.refine.rounds_done + 1
        seeds = len(spec.grid.seed)
        if points:
            spec = spec.with_round(points)
            reporter.say(f"refine round {number}/{spec.refine.rounds}: {len(points):,} points x {seeds} seed(s) = "
                         f"{len(points) * seeds:,} runs where the labels change along {', '.join(spec.refine.axes)}")
        else:
            why = "the run budget (refine.max_runs) is used" if spec.refine.max_runs is not None and \
                spec.refine.runs_added(seeds) + seeds > spec.refine.max_runs else "no cell's corners disagree"
            reporter.say(f"refine round {number}/{spec.refine.rounds}: nothing to add ({why})")
            while spec.refine.rounds_done < spec.refine.rounds:
                spec = spec.with_round([])
        # Fresh packs for the round's runs (resume=False: no earlier trial of theirs to restore).
        driver.train_unfinished(held, spec, address, num_cpus, connect_timeout, None, resume=False)
    return spec


def _train_refine_report(held: driver.Driver, spec: SweepSpec, address: str | None, num_cpus: int | None,
                         connect_timeout: float, pack_size: int | None, *, resume: bool, report: bool) -> None:
    """What sweep, resume and refine do while holding the folder: train the runs not finished,
    run the refinement rounds left, then label and report."""
    driver.train_unfinished(held, spec, address, num_cpus, connect_timeout, pack_size, resume=resume)
    refined = _refine_rounds(held, held.sweep_dir, spec, address, num_cpus, connect_timeout, held.reporter)
    if report:
        _label_and_report(held.sweep_dir, refined, held.reporter)


def _label_and_report(sweep_dir: Location, spec: SweepSpec, reporter: driver.Reporter) -> None:
    """The end of a sweep: labels with the spec's criteria, the report, both in the folder, and
    the verdicts of the spec's claims when it states any."""
    _classify(sweep_dir, spec, {}, None, reporter)
    verification = _verify(sweep_dir, spec) if spec.expect else None
    _report(sweep_dir, None, None, None, reporter, verification)
    if verification is not None:
        reporter.verified(verification)


# ----------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Status:
    """How far a sweep is, from the rows on disk (runs.parquet's word is not trusted)."""

    sweep_dir: Location
    spec: SweepSpec
    counts: dict[str, int]  # STATES -> runs
    run_steps_done: int
    run_steps_total: int
    damaged: list[completion.RunState]
    unreadable: list[store.Unreadable]
    table_problem: str | None
    driver: Holder | None  # who holds the folder's lock now, if anyone
    phases_done: dict[str, int]  # finished runs per phase
    phases_unfinished: dict[str, int]  # unfinished runs per phase, so far (provisional)

    @property
    def runs(self) -> int:
        return sum(self.counts.values())

    @property
    def unfinished(self) -> int:
        return self.runs - self.counts["done"]


def status(results: PathLike) -> Status:
    """Runs done / started / pending / failed / damaged and the phases so far. Only reads."""
    sweep_dir = folder.existing(results)
    spec = folder.frozen_spec(sweep_dir)
    found = folder.survey(spec, sweep_dir)
    recorded = found.recorded("status")
    counts = dict.fromkeys(STATES, 0)
    for run_id, state in found.states.items():
        name = state.state
        if name in ("started", "pending") and recorded.get(run_id) == "failed":
            name = "failed"
        counts[name] += 1
    sound = [r for r, s in found.states.items() if s.damage is None]
    labels = phases.classify(found.metrics[found.metrics["run_id"].isin(sound)], criteria(spec))
    finished = labels["run_id"].isin(found.finished)
    return Status(
        sweep_dir=sweep_dir, spec=spec, counts=counts,
        run_steps_done=completion.run_steps_done(spec, found.states.values()),
        run_steps_total=len(found.states) * spec.total_steps,
        damaged=found.damaged, unreadable=found.unreadable, table_problem=found.table_problem,
        driver=lock_holder(folder.lock_folder(sweep_dir)),
        phases_done=phases.phase_counts(labels[finished]), phases_unfinished=phases.phase_counts(labels[~finished]),
    )


# ----------------------------------------------------------------------------- labels and report


def criteria(spec: SweepSpec, overrides: Mapping[str, object] | None = None) -> phases.PhaseCriteria:
    """The spec's phase criteria with overrides (a None value keeps the spec's)."""
    try:
        return phases.PhaseCriteria(**dataclasses.asdict(spec.phases)).with_overrides(**dict(overrides or {}))
    except ValueError as exc:
        raise Refused(f"{exc}; pass a valid value on the command line or fix 'phases' in the spec") from None


def classify(results: PathLike, out: PathLike | None = None, reporter: driver.Reporter | None = None, **overrides) -> pd.DataFrame:
    """Label every run (phases.classify) and write labels.parquet (or ``out``); returns the
    labels. Refused while any run's rows are damaged. ``overrides``: threshold, gap, budget,
    semi_min, semi_max, drop_min, plateau_window, plateau_rise_max (None keeps the spec's)."""
    sweep_dir = folder.existing(results)
    return _classify(sweep_dir, folder.frozen_spec(sweep_dir), overrides, out, reporter or driver.Reporter())


def _classify(sweep_dir: Location, spec: SweepSpec, overrides: Mapping, out: PathLike | None, reporter: driver.Reporter) -> pd.DataFrame:
    chosen = criteria(spec, overrides)
    found = folder.survey(spec, sweep_dir)
    _refuse_damaged(found, sweep_dir, "labels")
    labels = _with_capped_splits(phases.classify(found.metrics, chosen), spec, chosen.threshold)
    target = sweep_dir / store.LABELS_FILE if out is None else as_location(str(out))
    try:
        store.write_labels(sweep_dir, labels, target)
    except OSError as exc:
        raise Refused(f"cannot write {target} ({exc.strerror or ' '.join(str(exc).split())}); "
                      "pass --out FILE to write the labels elsewhere") from None
    reporter.classified(labels, chosen, len(found.states) - len(found.finished), len(found.states), sweep_dir, target)
    return labels


def _with_capped_splits(labels: pd.DataFrame, spec: SweepSpec, threshold: float) -> pd.DataFrame:
    """The labels, where a run that did not generalise trained on a split that determines fewer
    than ``threshold`` of its validation examples (a task that can tell: toy_addition) with a
    reason that says so: by Liu's effective theory no learning rate generalises it (the training
    pairs leave the other pairs' embeddings free; no liu_fraction run beat that share)."""
    if not driver.splits_worth_checking(spec):
        return labels
    if spec.task.ideal_accuracy(spec.grid.train_fraction[0], spec.grid.seed[0]) is None:
        return labels
    fields = [name for name, _ in spec.grid.fields()]
    ideal: dict[tuple, float] = {}
    runs = {run.run_id: run for run in grid.expand(spec)}
    reasons = labels["reason"].tolist()
    for i, (run_id, phase) in enumerate(zip(labels["run_id"], labels["phase"])):
        run = runs.get(run_id)
        if run is None or phase in ("comprehension", "grokking"):
            continue
        values = tuple(run.value(name) for name in fields)
        key = (values, run.train_fraction, run.seed)
        if key not in ideal:
            task = spec.for_values(dict(zip(fields, values))).task if fields else spec.task
            ideal[key] = task.ideal_accuracy(run.train_fraction, run.seed)
        if ideal[key] < threshold:
            reasons[i] += (f"; its split determines {ideal[key]:.0%} of the validation pairs (Liu's ideal accuracy), "
                           f"below {threshold:g}: by Liu's effective theory no learning rate generalises it")
    return labels.assign(reason=reasons)


def report(results: PathLike, axes: tuple[str, str] | str | None = None, facet: str | None = None,
           out: PathLike | None = None, reporter: driver.Reporter | None = None) -> Path | Location:
    """Write report.html (or ``out``): the phase diagram and the runs' learning curves, one
    self-contained file that opens offline. ``axes``: two swept hyperparameters for the
    diagram, as a pair or "repr_lr,decoder_lr" (default: chosen from the grid); ``facet``: a
    third, one row of panels per value. Refused before ``classify``, and while any metrics file
    or the runs table is unreadable. Returns where it went."""
    sweep_dir = folder.existing(results)
    spec = folder.frozen_spec(sweep_dir)
    found = _labelled_and_whole(sweep_dir, spec, "curves are never drawn")
    verification = _verify(sweep_dir, spec, found) if spec.expect else None
    return _report(sweep_dir, _axes_pair(axes), facet, out, reporter or driver.Reporter(), verification)


def _labelled_and_whole(sweep_dir: Location, spec: SweepSpec, never: str) -> completion.Survey:
    """The folder's survey, once it has labels, a readable runs table and no unreadable metrics
    part (what the report, figures and trackers need); else Refused. ``never``: what is never
    made from partial rows, for the message."""
    if not (sweep_dir / store.LABELS_FILE).is_file():
        raise Refused(f"{sweep_dir}: no {store.LABELS_FILE} yet; run `grokgrid classify {sweep_dir}` first")
    found = folder.survey(spec, sweep_dir)
    if found.table_problem:
        raise Refused(f"{found.table_problem}; `grokgrid resume {sweep_dir}` rebuilds it")
    if found.unreadable:
        raise Refused(f"{found.unreadable[0].describe()}; {never} from partial rows: "
                      f"`grokgrid resume {sweep_dir}` trains the damaged run(s) again")
    return found


def _axes_pair(axes: tuple[str, str] | str | None) -> tuple[str, str] | None:
    if axes is None:
        return None
    text = axes if isinstance(axes, str) else ",".join(map(str, axes))
    parts = [a.strip() for a in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise Refused(f"--axes {text!r}: give two hyperparameters separated by a comma, e.g. repr_lr,decoder_lr")
    return parts[0], parts[1]


def _report(sweep_dir: Location, axes, facet: str | None, out: PathLike | None, reporter: driver.Reporter,
            verification: Verification | None = None) -> Path | Location:
    from grokgrid import report as report_module

    target = sweep_dir / store.REPORT_FILE if out is None else as_location(str(out))
    claims = {} if verification is None else {"verdicts": verification.verdicts, "unfinished": verification.unfinished}
    try:
        path = report_module.write_report(sweep_dir, axes=axes, facet=facet, out=out, **claims)
    except store.DamagedFile as exc:
        rebuilt = "classify" if exc.path.name == store.LABELS_FILE else "resume"
        raise Refused(f"{exc}; `grokgrid {rebuilt} {sweep_dir}` rebuilds it") from None
    except ValueError as exc:
        raise Refused(f"{'--facet' if str(exc).startswith('facet') else '--axes'}: {exc}") from None
    except OSError as exc:
        raise Refused(f"cannot write {target} ({exc.strerror or ' '.join(str(exc).split())}); "
                      "pass --out FILE to write the report elsewhere") from None
    reporter.reported(path, sweep_dir)
    return path


# ----------------------------------------------------------------------------- figures, trackers


def figure(results: PathLike, kind: str = "phase", *, axes: tuple[str, str] | str | None = None,
           facet: str | None = None, out: PathLike | None = None, width: float | None = None, dpi: int | None = None,
           max_runs: int | None = None, runs: Sequence[str] | str | None = None,
           reporter: driver.Reporter | None = None) -> Path | Location:
    """Write a static figure of a labelled sweep for a paper (figures/): ``kind`` 'phase' (the
    phase diagram), 'delay' (t_val - t_train), 'accuracy' (final val accuracy), each over
    ``axes`` (two swept hyperparameters, x then y; default the report's), or 'curves' (train and
    val accuracy against the step: at most ``max_runs`` runs, default 16, chosen as the report
    does, or the run ids ``runs``). ``facet``: one panel per value of another hyperparameter.
    ``out``: a .pdf, .svg or .png (default <results>/figures/<kind>.pdf); ``width`` in inches
    (default one journal column, 3.4), ``dpi`` for PNG (300). Refused (nothing written) on a
    bad option or a folder without labels or with damaged rows. Returns where it went."""
    from grokgrid import figures

    pair = _axes_pair(axes)
    run_ids = [r.strip() for r in runs.split(",") if r.strip()] if isinstance(runs, str) else runs
    options = dict(width=figures.style.COLUMN_WIDTH_IN if width is None else width,
                   dpi=figures.style.PNG_DPI if dpi is None else dpi, max_runs=max_runs, run_ids=run_ids)
    figures.check_options(kind, axes=pair if kind == "curves" else None, **options)
    if out is not None:
        figures.output_format(out)
    sweep_dir = folder.existing(results)
    spec = folder.frozen_spec(sweep_dir)
    _labelled_and_whole(sweep_dir, spec, "figures are never drawn")
    target = sweep_dir / "figures" / f"{kind}.pdf" if out is None else as_location(str(out))
    try:
        path = figures.write_figure(sweep_dir, kind, out=target, axes=pair, facet=facet,
                                    threshold=spec.phases.threshold, **options)
    except store.DamagedFile as exc:
        rebuilt = "classify" if exc.path.name == store.LABELS_FILE else "resume"
        raise Refused(f"{exc}; `grokgrid {rebuilt} {sweep_dir}` rebuilds it") from None
    except OSError as exc:
        raise Refused(f"cannot write {target} ({exc.strerror or ' '.join(str(exc).split())}); "
                      "pass --out FILE to write the figure elsewhere") from None
    (reporter or driver.Reporter()).say(f"figure: {path}")
    return path


def track(results: PathLike, to: Sequence[str] | str, reporter: driver.Reporter | None = None) -> list:
    """Send a labelled sweep's finished runs to experiment trackers (tracking/): ``to`` holds
    targets written TRACKER[=WHERE], e.g. "mlflow", "mlflow=http://host:5000",
    "tensorboard=runs/tb", "wandb=team/project". One tracker run per grokgrid run, grouped by
    sweep; sending again replaces changed runs and leaves the others. Returns what each did
    (tracking.Exported). Refused on a bad target, a tracker package not installed, or a folder
    without labels or with damaged rows."""
    from grokgrid import tracking

    targets = tracking.parse_targets([to] if isinstance(to, str) else to, "--to")
    if not targets:
        raise Refused("--to: give a tracker: mlflow, tensorboard or wandb (optionally TRACKER=WHERE)")
    sweep_dir = folder.existing(results)
    reporter = reporter or driver.Reporter()
    return [_track(sweep_dir, target, reporter) for target in targets]


def _track(sweep_dir: Location, target, reporter: driver.Reporter):
    from grokgrid import tracking

    spec = folder.frozen_spec(sweep_dir)
    found = _labelled_and_whole(sweep_dir, spec, "tracker runs are never sent")
    try:
        labels = store.read_labels(sweep_dir)
    except store.DamagedFile as exc:
        raise Refused(f"{exc}; `grokgrid classify {sweep_dir}` rebuilds it") from None
    finished = [r for r in found.states if r in found.finished]  # a damaged run is not finished: never sent
    done = tracking.export(target, spec, labels, found.metrics, finished, found.recorded("pack_id"), reporter.say)
    reporter.say(f"tracked: {done.describe()}")
    if len(finished) < len(found.states):
        reporter.warn(f"{len(found.states) - len(finished)} unfinished or damaged run(s) not sent; `grokgrid resume {sweep_dir}` "
                      f"finishes them, then `grokgrid track {sweep_dir} --to {target}` sends them")
    return done


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Verification:
    """The verdicts of a sweep's claims (its spec's ``expect:``), one per claim."""

    sweep_dir: Location
    verdicts: list[verdicts_of.Verdict]
    runs: int
    unfinished: int  # runs not finished yet: the verdicts are provisional while any are

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def verify(results: PathLike) -> Verification:
    """Check the sweep's claims (``expect:``) on its runs, labelled now from the rows on disk
    with the spec's phase criteria (a labels.parquet made with other criteria is not used).
    Refused when the spec states no claim, or while any run's rows are damaged."""
    sweep_dir = folder.existing(results)
    return _verify(sweep_dir, folder.frozen_spec(sweep_dir))


def _verify(sweep_dir: Location, spec: SweepSpec, found: completion.Survey | None = None) -> Verification:
    """``found``: the folder's survey when the caller has just made one (saves reading every
    metrics part again)."""
    if not spec.expect:
        raise Refused(f"{sweep_dir}: its spec states no claims (no 'expect:' section); add one to the spec "
                      "(README, 'Reproductions') and rerun the sweep, which relabels without retraining")
    found = found if found is not None else folder.survey(spec, sweep_dir)
    _refuse_damaged(found, sweep_dir, "verdicts")
    labels = phases.classify(found.metrics, criteria(spec))
    hyperparameters = pd.DataFrame([{"run_id": r.run_id, **r.columns()} for r in grid.expand(spec)])
    table = verdicts_of.run_table(labels, hyperparameters, found.metrics)
    return Verification(sweep_dir, verdicts_of.verdicts(spec.expect, table, found.metrics),
                        runs=len(found.states), unfinished=len(found.states) - len(found.finished))


def _refuse_damaged(found: completion.Survey, sweep_dir: Location, what: str) -> None:
    if found.damaged:
        first = found.damaged[0]
        more = f" (and {len(found.damaged) - 1} more run(s))" if len(found.damaged) > 1 else ""
        raise Refused(f"run {first.run_id}: {first.damage}{more}; {what} are never computed from partial rows: "
                      f"`grokgrid resume {sweep_dir}` trains the damaged run(s) again")


# ----------------------------------------------------------------------------- many sweeps


@dataclass(frozen=True)
class Listing:
    """One sweep under a results root, as `grokgrid ls` shows it."""

    name: str
    path: Location
    runs: int
    done: int
    running: bool  # a driver holds its lock now
    phases: dict[str, int] | None  # from labels.parquet; None before classify
    problem: str | None = None  # why the folder could not be read


def ls(root: PathLike = "results") -> list[Listing]:
    """Every sweep folder directly under ``root``, by name: runs, runs done (from the rows on
    disk), whether a driver is running, and the phase counts of its labels."""
    base = folder.existing(root, option="ROOT")
    found = []
    for child in base.iterdir():
        if child.is_dir() and folder.is_sweep(child):
            found.append(_listing(child))
    return found


def _listing(sweep_dir: Location) -> Listing:
    running = lock_holder(folder.lock_folder(sweep_dir)) is not None
    try:
        spec = folder.frozen_spec(sweep_dir)
    except Refused as exc:
        return Listing(sweep_dir.name, sweep_dir, 0, 0, running, None, str(exc))
    found = folder.survey(spec, sweep_dir)
    counts, problem = None, None
    try:
        counts = phases.phase_counts(store.read_labels(sweep_dir))
    except FileNotFoundError:
        pass
    except store.DamagedFile as exc:
        problem = str(exc)
    if found.damaged and problem is None:
        problem = f"{len(found.damaged)} damaged run(s)"
    return Listing(sweep_dir.name, sweep_dir, len(found.states), len(found.finished), running, counts, problem)
