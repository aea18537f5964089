"""The ``grokgrid`` command line: sweep, resume, status, classify, report.

Parses arguments, calls the modules below, prints progress and where things are. Bad input
(a spec, a path, an option) is one line on stderr naming what is wrong and how to fix it, exit
code 2, no traceback, and nothing written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn, Optional

import pandas as pd
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from grokgrid import __version__, grid, phases, store
from grokgrid.lock import LOCK_FILE, SweepLock, SweepLocked
from grokgrid.lock import holder as lock_holder
from grokgrid.spec import HYPERPARAMETERS, SpecError, SweepSpec, dump_spec, load_spec, spec_from_dict
from grokgrid.storage import Location, StorageError, as_location

app = typer.Typer(
    name="grokgrid",
    help="Map phase diagrams of grokking: sweep hyperparameters on Ray, label every run, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_USAGE = 2
SWEEP_DIR_HELP = "A sweep's results folder, e.g. results/quickstart or s3://bucket/results/quickstart."


def _fail(message: str) -> NoReturn:
    errors.print(f"error: {message}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def _version(value: bool) -> None:
    if value:
        console.print(f"grokgrid {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """grokgrid: phase diagrams of grokking."""


# ----------------------------------------------------------------------------- sweep folder


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _spec_difference(old: dict, new: dict) -> list[str]:
    """Fields whose change would make the folder mix two sweeps' results. `resources` is not
    among them: how a sweep executes (CPUs, GPUs, packing) never changes a run's results."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not k.startswith("resources."))


def _with_resources(spec: SweepSpec, cpus_per_trial: float | None, gpus_per_trial: float | None) -> SweepSpec:
    """The spec with the command line's per-trial resources (None: keep the spec's)."""
    if cpus_per_trial is not None and not cpus_per_trial > 0:
        _fail(f"--cpus-per-trial: must be > 0, got {cpus_per_trial:g}; give e.g. 1")
    if gpus_per_trial is not None and not gpus_per_trial >= 0:
        _fail(f"--gpus-per-trial: must be >= 0, got {gpus_per_trial:g}; give e.g. 0.25 (four packs per GPU)")
    resources = dataclasses.replace(
        spec.resources,
        cpus_per_trial=spec.resources.cpus_per_trial if cpus_per_trial is None else cpus_per_trial,
        gpus_per_trial=spec.resources.gpus_per_trial if gpus_per_trial is None else gpus_per_trial,
    )
    return dataclasses.replace(spec, resources=resources)


def _load_frozen_spec(sweep_dir: Location) -> SweepSpec:
    """The spec a results folder was made with (its frozen copy)."""
    path = sweep_dir / store.SPEC_FILE
    if not path.is_file():
        _fail(f"{sweep_dir}: not a grokgrid results folder (no {store.SPEC_FILE}); give results/<sweep>")
    try:
        return spec_from_dict(yaml.safe_load(path.read_text()))
    except (SpecError, yaml.YAMLError) as exc:
        _fail(f"{path}: the frozen spec is unreadable ({exc}); rerun the sweep with --overwrite")


def _is_foreign(sweep_dir: Location) -> bool:
    """A non-empty folder that is not a grokgrid results folder (never written into)."""
    return (
        sweep_dir.exists()
        and not (sweep_dir / store.SPEC_FILE).is_file()
        and any(p.name != LOCK_FILE for p in sweep_dir.iterdir())
    )


def _prepare_folder(spec: SweepSpec, sweep_dir: Location, overwrite: bool) -> set[str]:
    """Check the results folder before writing anything; returns the ids of runs already done.

    Same spec again: runs marked done are kept and skipped. A different spec: refused unless
    --overwrite, since mixing two specs' runs in one folder would make the phase diagram lie.
    The caller holds the folder's lock when the folder exists (--overwrite keeps the lock file).
    """
    if not sweep_dir.exists():
        return set()
    if not (sweep_dir / store.SPEC_FILE).is_file():
        if _is_foreign(sweep_dir):
            _fail(f"{sweep_dir} exists and is not a grokgrid results folder; move it away or rename the sweep")
        return set()
    if overwrite:
        for child in sweep_dir.iterdir():
            if child.name != LOCK_FILE:
                child.remove()
        return set()
    old = _load_frozen_spec(sweep_dir)
    changed = _spec_difference(old.to_dict(), spec.to_dict())
    if changed:
        _fail(
            f"{sweep_dir} holds a sweep with a different spec (differs in {', '.join(changed[:4])}); "
            "pass --overwrite to replace it, or change 'name' in the spec"
        )
    try:
        runs = store.read_runs(sweep_dir)
    except Exception:  # noqa: BLE001 - a torn runs table means nothing is known to be done
        return set()
    return set(runs.loc[runs["status"] == "done", "run_id"])


def _runs_table(runs: list[grid.RunConfig], pack_of: dict[str, str], done: set[str], node_of: dict[str, str]) -> pd.DataFrame:
    """One row per run: ids, hyperparameters, status, and the Ray node that trained its pack."""
    rows = [
        {
            "run_id": r.run_id,
            "pack_id": pack_of.get(r.run_id, ""),
            **r.hyperparameters(),
            "status": "done" if r.run_id in done else "pending",
            "node_id": node_of.get(r.run_id, ""),
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=["run_id", "pack_id", *HYPERPARAMETERS, "status", "node_id"])


def _previous_runs(sweep_dir: Location) -> tuple[dict[str, str], dict[str, str]]:
    """From the folder's runs table (one read): run_id -> pack_id, and run_id -> node_id, each
    where set (a table from before node_id has none)."""
    try:
        runs = store.read_runs(sweep_dir)
    except Exception:  # noqa: BLE001 - no (readable) runs table: nothing earlier to remember
        return {}, {}

    def column(name: str) -> dict[str, str]:
        if name not in runs.columns:
            return {}
        return {r: v for r, v in zip(runs["run_id"], runs[name]) if isinstance(v, str) and v}

    return column("pack_id"), column("node_id")


def _lock_folder(sweep_dir: Location) -> Path:
    """The local folder whose lock file guards the sweep: the results folder itself, or for
    results under a filesystem URI (no flock there) a folder of this machine's cache."""
    if sweep_dir.local is not None:
        return sweep_dir.local
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "grokgrid" / "locks" / hashlib.sha256(sweep_dir.uri.encode()).hexdigest()[:16]


def _sweep_lock(sweep_dir: Location) -> SweepLock:
    return SweepLock(_lock_folder(sweep_dir), label=str(sweep_dir))


def _lock(sweep_dir: Location) -> SweepLock:
    """Take the sweep folder's lock for this driver's lifetime, or fail (exit 2) naming its holder."""
    try:
        return _sweep_lock(sweep_dir).acquire()
    except SweepLocked as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{sweep_dir}: cannot create its lock file ({exc}); check the folder's permissions and free space")


# ----------------------------------------------------------------------------- commands


@app.command()
def sweep(
    spec_path: Path = typer.Argument(..., help="Sweep spec (YAML), e.g. sweeps/quickstart.yaml.", show_default=False),
    results: str = typer.Option(
        "results", "--storage", "--results",
        help="Where the sweep's results folder goes: a local or NFS folder, or a pyarrow filesystem URI "
        "(s3://bucket/prefix, gs://bucket/prefix, file:///path) that every Ray node can reach.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing results folder of this sweep first."),
    report: bool = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all)."),
    cpus_per_trial: Optional[float] = typer.Option(None, "--cpus-per-trial", help="CPUs (torch threads) per pack (default: the spec's resources.cpus_per_trial)."),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", help="GPUs per pack, fractions allowed, e.g. 0.25 (default: the spec's resources.gpus_per_trial)."),
    pack_size: Optional[int] = typer.Option(None, "--pack-size", min=1, help="Runs per trial (default: the spec's resources.pack_size)."),
) -> None:
    """Run every run of a sweep spec as Ray Tune trials, then classify and report."""
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        _fail(str(exc))
    spec = _with_resources(spec, cpus_per_trial, gpus_per_trial)
    sweep_dir = _location("--storage", results) / spec.name
    if _is_foreign(sweep_dir):
        _fail(f"{sweep_dir} exists and is not a grokgrid results folder; move it away or rename the sweep")
    # An existing folder is locked before it is read or replaced; a new one once Ray is up
    # (so that a bad --address leaves nothing behind).
    lock = _lock(sweep_dir) if sweep_dir.exists() else _sweep_lock(sweep_dir)
    try:
        done = _prepare_folder(spec, sweep_dir, overwrite)
        runs = grid.expand(spec)
        todo = [r for r in runs if r.run_id not in done]
        console.print(
            f"[bold]grokgrid {__version__}[/] sweep [bold]{spec.name}[/]: {len(runs)} runs, "
            f"{spec.training.steps} steps each" + (f"; {len(todo)} left to run" if done else "")
        )
        started = time.perf_counter()
        if not todo:
            console.print(f"nothing left to run: all {len(runs)} runs are done; results in {sweep_dir}")
        else:
            tune_sweep = _connect(address, num_cpus)
            if not lock.held:
                lock = _lock(sweep_dir)
            packs, size = _make_packs(tune_sweep, spec, todo, pack_size)
            _record_and_train(
                tune_sweep, spec, sweep_dir, runs, done, *_previous_runs(sweep_dir), packs,
                f"{len(todo)} runs in {len(packs)} packs of up to {size} (one Ray Tune trial each)",
                restore=False, started=started,
            )
        if report:
            _classify(sweep_dir, spec)
            _report(sweep_dir, axes=None)
    finally:
        lock.release()


def _connect(address: str | None, num_cpus: int | None):
    """Start (or join) Ray; returns the sweep module (Ray is imported only when a sweep runs)."""
    from grokgrid import sweep as tune_sweep

    console.print("starting a local Ray..." if not address else f"joining Ray at {address}...")
    try:
        tune_sweep.connect(address=address, num_cpus=num_cpus)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        _fail(f"--address {address}: cannot reach a Ray cluster ({exc}); check the address or drop --address")
    return tune_sweep


def _make_packs(tune_sweep, spec: SweepSpec, todo: list[grid.RunConfig], pack_size: int | None) -> tuple[list[grid.Pack], int]:
    from grokgrid import train

    size = pack_size or spec.resources.pack_size
    if size == "auto":
        slots = tune_sweep.parallel_slots(spec.resources)
        size = grid.auto_pack_size(len(todo), slots, spec.resources.gpus_per_trial > 0, train.parameters_per_run(spec))
    return grid.pack(todo, size), size


def _record_and_train(tune_sweep, spec, sweep_dir: Location, runs, done, previous: dict[str, str],
                      previous_nodes: dict[str, str], packs, message: str, *, restore: bool, started: float) -> None:
    """Write the spec and the runs table (each run's pack: this launch's, else its earlier one;
    a done run keeps the node that trained it), say how the runs are packed, and train."""
    pack_of = {**previous, **{r.run_id: p.pack_id for p in packs for r in p.runs}}
    node_of = {r: n for r, n in previous_nodes.items() if r in done}
    table = _write_tables(spec, sweep_dir, runs, pack_of, done, node_of)
    console.print(message)
    _train(tune_sweep, spec, sweep_dir, packs, table, restore=restore, started=started)


def _write_tables(spec: SweepSpec, sweep_dir: Location, runs, pack_of: dict[str, str], done: set[str],
                  node_of: dict[str, str]) -> pd.DataFrame:
    table = _runs_table(runs, pack_of, done, node_of)
    sweep_dir.mkdir()
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec))
    store.write_runs(sweep_dir, table)
    return table


def _train(tune_sweep, spec: SweepSpec, sweep_dir: Location, packs, table: pd.DataFrame, *, restore: bool, started: float) -> None:
    failed = _launch_with_progress(tune_sweep, spec, sweep_dir, packs, table, restore=restore)
    if failed:
        errors.print(f"{failed} run(s) failed; their status is 'failed' in {sweep_dir / store.RUNS_FILE}", markup=False)
    elif (table["status"] == "done").all():
        # Every run is finished: the pack checkpoints (ours and Tune's copies) can only ever be
        # resumed into nothing; Tune's experiment state itself stays.
        (sweep_dir / store.CHECKPOINTS_DIR).rmtree()
        for trial in (sweep_dir / store.TUNE_DIR).iterdir():
            if trial.name.startswith("pack_"):
                for folder in trial.iterdir():
                    if folder.name.startswith("checkpoint_"):
                        folder.rmtree()
    console.print(f"trained in {time.perf_counter() - started:.1f} s; results in {sweep_dir}")


def _launch_with_progress(
    tune_sweep, spec: SweepSpec, sweep_dir: Location, packs: list[grid.Pack], table: pd.DataFrame, *, restore: bool = False
) -> int:
    """Train the packs with a progress bar (in run-steps); keep runs.parquet's status current.

    restore: continue Tune's saved experiment (``sweep.resume``) when it holds these packs, else
    launch them afresh (each pack still continues from its results-folder checkpoint)."""
    size_of = {p.pack_id: len(p.runs) for p in packs}
    reached = {p.pack_id: 0 for p in packs}
    n_runs = sum(size_of.values())
    failed_packs: set[str] = set()
    finished_packs: set[str] = set()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("run-steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"training 0/{n_runs} runs done", total=n_runs * spec.training.steps)

        def advance(pack_id: str, step: int) -> None:
            if pack_id not in reached:  # a trial of Tune's state that finished before the restore
                return
            reached[pack_id] = max(reached[pack_id], step)
            progress.update(bar, completed=sum(size_of[p] * s for p, s in reached.items()))

        def record(outcome) -> None:
            members = table["run_id"].isin(outcome.run_ids)
            table.loc[members, "status"] = "done" if outcome.ok else "failed"
            if outcome.node_id:
                table.loc[members, "node_id"] = outcome.node_id
            if outcome.pack_id in size_of:
                finished_packs.add(outcome.pack_id)
                (failed_packs.add if not outcome.ok else failed_packs.discard)(outcome.pack_id)

        def on_pack_done(outcome) -> None:
            record(outcome)
            store.write_runs(sweep_dir, table)
            if not outcome.ok:
                progress.console.print(f"[red]pack {outcome.pack_id} failed:[/] {outcome.error}", markup=True)
            elif outcome.restored_from_step is not None:
                progress.console.print(f"pack {outcome.pack_id} resumed from step {outcome.restored_from_step} and finished", markup=False)
            advance(outcome.pack_id, spec.training.steps)
            done = sum(size_of[p] for p in finished_packs)
            progress.update(bar, description=f"training {done}/{n_runs} runs done")

        outcomes = None
        if restore:
            try:
                outcomes = tune_sweep.resume(spec, sweep_dir, packs, on_progress=advance, on_pack_done=on_pack_done)
            except tune_sweep.TuneStateUnusable as exc:
                progress.console.print(f"not restoring Tune's state ({exc}); relaunching the packs from their checkpoints", markup=False)
        if outcomes is None:
            outcomes = tune_sweep.launch(spec, sweep_dir, packs, on_progress=advance, on_pack_done=on_pack_done)
    # Trials that finished before a restore (their end never reached this driver) and any
    # event missed above: the outcomes are the final word on every pack.
    for outcome in outcomes:
        record(outcome)
    store.write_runs(sweep_dir, table)
    return sum(size_of[p] for p in failed_packs)


@app.command()
def resume(
    sweep_dir: str = typer.Argument(..., help=SWEEP_DIR_HELP, show_default=False),
    report: bool = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all)."),
    cpus_per_trial: Optional[float] = typer.Option(None, "--cpus-per-trial", help="CPUs (torch threads) per pack (default: the spec's resources.cpus_per_trial)."),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", help="GPUs per pack, fractions allowed, e.g. 0.25 (default: the spec's resources.gpus_per_trial)."),
) -> None:
    """Finish an interrupted sweep: every run not done continues from its pack's last checkpoint."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _with_resources(_load_frozen_spec(sweep_dir), cpus_per_trial, gpus_per_trial)
    lock = _lock(sweep_dir)
    try:
        runs = grid.expand(spec)
        previous, previous_nodes = _previous_runs(sweep_dir)
        done = _prepare_folder(spec, sweep_dir, overwrite=False)
        todo = [r for r in runs if r.run_id not in done]
        console.print(
            f"[bold]grokgrid {__version__}[/] resume [bold]{spec.name}[/]: {len(runs)} runs, "
            f"{len(done)} done, {len(todo)} to finish"
        )
        started = time.perf_counter()
        if not todo:
            console.print(f"nothing left to run: all {len(runs)} runs are done; results in {sweep_dir}")
        else:
            tune_sweep = _connect(address, num_cpus)
            packs, fresh = _regroup(todo, previous)
            if fresh:
                extra, _ = _make_packs(tune_sweep, spec, fresh, None)
                packs += extra
            _record_and_train(
                tune_sweep, spec, sweep_dir, runs, done, previous, previous_nodes, packs,
                f"{len(todo)} runs in {len(packs)} packs; each continues from its last checkpoint",
                restore=True, started=started,
            )
        if report:
            _classify(sweep_dir, spec)
            _report(sweep_dir, axes=None)
    finally:
        lock.release()


def _regroup(todo: list[grid.RunConfig], pack_of: dict[str, str]) -> tuple[list[grid.Pack], list[grid.RunConfig]]:
    """The packs the runs were trained in (from runs.parquet), so that their checkpoints match;
    returns those packs and the runs that had none (packed afresh by the caller). A pack whose
    members no longer hash to its id (a damaged table) is rebuilt under its members' own id."""
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


@app.command()
def status(
    sweep_dir: str = typer.Argument(..., help=SWEEP_DIR_HELP, show_default=False),
) -> None:
    """How far a sweep is: runs done / running / pending / failed, and the phases so far."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    run_ids = [r.run_id for r in grid.expand(spec)]
    statuses = dict.fromkeys(run_ids, "pending")
    try:
        table = store.read_runs(sweep_dir)
        statuses.update({r: s for r, s in zip(table["run_id"], table["status"]) if r in statuses})
    except FileNotFoundError:
        pass  # the sweep never got to training
    except Exception as exc:  # noqa: BLE001 - a torn runs table: report it, count every run pending
        errors.print(f"warning: skipping unreadable {sweep_dir / store.RUNS_FILE}: {' '.join(str(exc).split())}", markup=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = store.read_metrics(sweep_dir)
    for warning in caught:
        errors.print(f"warning: {' '.join(str(warning.message).split())}", markup=False)
    metrics = metrics[metrics["run_id"].isin(statuses)]
    last_step = metrics.groupby("run_id")["step"].max().to_dict()
    for run_id, state in statuses.items():
        if state == "pending" and run_id in last_step:
            statuses[run_id] = "running"  # it has rows, and its pack has not finished
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in ("done", "running", "pending", "failed")}
    steps = spec.training.steps
    reached = sum(steps if statuses[r] == "done" else min(last_step.get(r, 0), steps) for r in statuses)
    console.print(
        f"sweep [bold]{spec.name}[/]: {len(statuses)} runs: {counts['done']} done, {counts['running']} running, "
        f"{counts['pending']} pending, {counts['failed']} failed; "
        f"{reached}/{len(statuses) * steps} run-steps on disk ({100 * reached / max(1, len(statuses) * steps):.0f}%)"
    )
    holder = lock_holder(_lock_folder(sweep_dir))
    if holder is not None:
        console.print(f"driver: {holder.describe()} ({holder.command})", markup=False)
    elif counts["running"] or counts["pending"] or counts["failed"]:
        console.print(f"no driver is running: `grokgrid resume {sweep_dir}` finishes the sweep", markup=False)
    criteria = _criteria(spec, {})
    labels = phases.classify(metrics, criteria)
    finished = labels["run_id"].map(lambda r: statuses.get(r) == "done")
    table = Table(title="phases so far", caption="classified now from the metrics on disk; unfinished runs' labels are provisional")
    table.add_column("phase")
    table.add_column("done runs", justify="right")
    table.add_column("unfinished runs", justify="right")
    done_counts = phases.phase_counts(labels[finished])
    open_counts = phases.phase_counts(labels[~finished])
    for phase in done_counts:
        table.add_row(phase, str(done_counts[phase]), str(open_counts.get(phase, 0)))
    console.print(table)


def _criteria(spec: SweepSpec, overrides: dict) -> phases.PhaseCriteria:
    """The spec's phase criteria with the command line's overrides (None: keep the spec's)."""
    try:
        return phases.PhaseCriteria(**dataclasses.asdict(spec.phases)).with_overrides(**overrides)
    except ValueError as exc:
        _fail(f"{exc}; pass a valid value on the command line or fix 'phases' in the spec")


def _classify(sweep_dir: Location, spec: SweepSpec, overrides: dict | None = None) -> pd.DataFrame:
    criteria = _criteria(spec, overrides or {})
    labels = phases.classify(store.read_metrics(sweep_dir), criteria)
    store.write_labels(sweep_dir, labels)
    counts = phases.phase_counts(labels)
    table = Table(
        title="phases",
        caption=f"threshold {criteria.threshold:g}, gap {criteria.gap}, budget {criteria.budget or 'all steps'}",
    )
    table.add_column("phase")
    table.add_column("runs", justify="right")
    for phase, count in counts.items():
        table.add_row(phase, str(count))
    console.print(table)
    console.print(f"labels: {sweep_dir / store.LABELS_FILE}")
    return labels


def _report(sweep_dir: Location, axes: tuple[str, str] | None, facet: str | None = None, out: Path | None = None) -> Path | Location:
    from grokgrid import report as report_module

    try:
        path = report_module.write_report(sweep_dir, axes=axes, facet=facet, out=out)
    except ValueError as exc:
        _fail(f"{'--facet' if str(exc).startswith('facet') else '--axes'}: {exc}")
    console.print(f"report: {path}")
    if not isinstance(path, Path):  # under a URI: say how to get a copy to open
        console.print(f"(to open it here: `grokgrid report {sweep_dir} --out report.html`)", markup=False)
    return path


def _location(option: str, text: str) -> Location:
    """A results location from the command line, or exit 2 naming the option and the fix."""
    try:
        return as_location(text)
    except StorageError as exc:
        _fail(f"{option} {exc}; give a local folder or a URI such as s3://bucket/prefix (pyarrow must support its scheme)")


def _sweep_dir_argument(text: str) -> Location:
    sweep_dir = _location("SWEEP_DIR", text)
    if not sweep_dir.is_dir():
        _fail(f"{sweep_dir}: no such folder; give a sweep's results folder, e.g. results/quickstart")
    return sweep_dir


@app.command()
def classify(
    sweep_dir: str = typer.Argument(..., help=SWEEP_DIR_HELP, show_default=False),
    threshold: Optional[float] = typer.Option(None, help="Accuracy threshold (default: the spec's phases.threshold)."),
    gap: Optional[int] = typer.Option(None, help="Grokking gap G in steps (default: the spec's phases.gap)."),
    budget: Optional[int] = typer.Option(None, help="Only steps <= budget count (default: the spec's phases.budget)."),
    semi_min: Optional[float] = typer.Option(None, help="Semi-grokking: lowest val-accuracy plateau (default: phases.semi_min)."),
    semi_max: Optional[float] = typer.Option(None, help="Semi-grokking: plateau below this (default: phases.semi_max)."),
    drop_min: Optional[float] = typer.Option(None, help="Un-/misgrokking: least val-accuracy drop (default: phases.drop_min)."),
    plateau_window: Optional[float] = typer.Option(None, help="Share of the last steps that makes the plateau (default: phases.plateau_window)."),
) -> None:
    """Label every run comprehension / grokking / memorization / confusion (Liu et al.), with
    semi-grokking, ungrokking and misgrokking as details beside them."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    overrides = dict(threshold=threshold, gap=gap, budget=budget, semi_min=semi_min, semi_max=semi_max,
                     drop_min=drop_min, plateau_window=plateau_window)
    _classify(sweep_dir, spec, overrides)


@app.command()
def report(
    sweep_dir: str = typer.Argument(..., help=SWEEP_DIR_HELP, show_default=False),
    axes: Optional[str] = typer.Option(None, help="Two swept hyperparameters for the phase diagram, e.g. repr_lr,decoder_lr."),
    facet: Optional[str] = typer.Option(None, help="A third hyperparameter: one row of phase-diagram panels per value, e.g. decoder_wd."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML here instead of <sweep_dir>/report.html (e.g. a local copy of a report on s3://)."),
) -> None:
    """Write report.html: the phase diagram and the runs' learning curves (opens offline)."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    _load_frozen_spec(sweep_dir)
    if not (sweep_dir / store.LABELS_FILE).is_file():
        _fail(f"{sweep_dir}: no {store.LABELS_FILE} yet; run `grokgrid classify {sweep_dir}` first")
    pair = None
    if axes is not None:
        parts = [a.strip() for a in axes.split(",")]
        if len(parts) != 2 or not all(parts):
            _fail(f"--axes {axes!r}: give two hyperparameters separated by a comma, e.g. repr_lr,decoder_lr")
        pair = (parts[0], parts[1])
    _report(sweep_dir, pair, facet, out)


def run() -> None:  # pragma: no cover - the console script's entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
