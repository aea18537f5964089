"""The ``grokgrid`` command line: sweep, resume, status, classify, report.

Parses arguments, calls the modules below, prints progress and where things are. Bad input
(a spec, a path, an option) is one line on stderr naming what is wrong and how to fix it, exit
code 2, no traceback, and nothing written. Ctrl-C or SIGTERM during a sweep stops it gracefully
(interrupts.py): the runs that finished are recorded from their rows on disk, the others stay
unfinished, and the command says how to resume and exits 130 / 143.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, Optional

import pandas as pd
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperCommand

try:  # typer >= 0.20 parses with its own copy of click; older typer with click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors

from grokgrid import __version__, completion, grid, interrupts, phases, plan, store
from grokgrid.lock import LOCK_FILE, SweepLock, SweepLocked
from grokgrid.lock import holder as lock_holder
from grokgrid.spec import HYPERPARAMETERS, SpecError, SweepSpec, dump_spec, load_spec, parse_yaml, spec_from_dict
from grokgrid.storage import Location, StorageError, as_location

app = typer.Typer(
    name="grokgrid",
    help="Map phase diagrams of grokking: sweep hyperparameters on Ray, label every run, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich panels print a type after every flag ("--overwrite <bool>").
    rich_markup_mode=None,
)
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_USAGE = 2
CPUS_HELP = ("CPUs Ray reserves for each pack, fractions allowed; the pack's torch uses that many threads "
             "(at least 1). Default: the spec's resources.cpus_per_trial.")
GPUS_HELP = "GPUs per pack, fractions allowed, e.g. 0.25 (default: the spec's resources.gpus_per_trial)."
CONNECT_TIMEOUT = 10.0
CONNECT_HELP = "Seconds to wait for --address (or RAY_ADDRESS) to answer before giving up."
SWEEP_DIR_HELP = "A sweep's results folder, e.g. results/quickstart or s3://bucket/results/quickstart."


class _Command(TyperCommand):
    """Usage lines as the README writes them: `grokgrid sweep [OPTIONS] SPEC`, not `{SPEC}`."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in super().collect_usage_pieces(ctx)]

    def make_context(self, info_name, args, parent=None, **extra):
        # A bad option is bad input like any other: one line naming it and the fix, exit 2
        # (click would print the usage, a hint and the error on three lines).
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _click_errors.UsageError as exc:
            if isinstance(exc, getattr(_click_errors, "NoArgsIsHelpError", ())):
                raise
            message = " ".join(exc.format_message().split()).rstrip(".")
            errors.print(f"error: {message}; see `grokgrid {info_name} --help`", markup=False)
            raise typer.Exit(EXIT_USAGE) from None


def _fail(message: str) -> NoReturn:
    errors.print(f"error: {message}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def _warn(message: str) -> None:
    errors.print(f"warning: {' '.join(message.split())}", markup=False)


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


# Spec sections that never change what training produces: how a sweep executes (resources),
# how its runs are read (phase criteria) and its description. A folder's spec may differ from a
# new one in these; the new values are recorded and the runs relabelled, none retrained.
_NOT_TRAINING = ("resources.", "phases.", "description")


def _spec_difference(old: dict, new: dict) -> list[str]:
    """Fields whose change would make the folder mix two sweeps' results."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not k.startswith(_NOT_TRAINING))


def _with_resources(spec: SweepSpec, cpus_per_trial: float | None, gpus_per_trial: float | None) -> SweepSpec:
    """The spec with the command line's per-trial resources (None: keep the spec's)."""
    if cpus_per_trial is not None and not (cpus_per_trial > 0 and math.isfinite(cpus_per_trial)):
        _fail(f"--cpus-per-trial: must be a finite number > 0, got {cpus_per_trial:g}; give e.g. 1")
    if gpus_per_trial is not None and not (gpus_per_trial >= 0 and math.isfinite(gpus_per_trial)):
        _fail(f"--gpus-per-trial: must be a finite number >= 0, got {gpus_per_trial:g}; give e.g. 0.25 (four packs per GPU)")
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
        return spec_from_dict(parse_yaml(path.read_text()))
    except RecursionError:
        _fail(f"{path}: the frozen spec is unreadable (nested too deeply); "
              "rerun the sweep from its YAML (`grokgrid sweep SPEC`), with --overwrite if it is refused")
    except (SpecError, yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        _fail(f"{path}: the frozen spec is unreadable ({' '.join(str(exc).split())}); "
              "rerun the sweep from its YAML (`grokgrid sweep SPEC`), with --overwrite if it is refused")


def _is_foreign(sweep_dir: Location) -> bool:
    """A non-empty folder that is not a grokgrid results folder (never written into)."""
    return (
        sweep_dir.exists()
        and not (sweep_dir / store.SPEC_FILE).is_file()
        and any(p.name != LOCK_FILE for p in sweep_dir.iterdir())
    )


def _check_folder(spec: SweepSpec, sweep_dir: Location, overwrite: bool) -> None:
    """Refuse, before anything is written, a folder that holds another spec's sweep (mixing two
    specs' runs would make the phase diagram lie) unless --overwrite, or one that is not ours."""
    if not sweep_dir.exists() or overwrite:
        return
    if not (sweep_dir / store.SPEC_FILE).is_file():
        if _is_foreign(sweep_dir):
            _fail(f"{sweep_dir} exists and is not a grokgrid results folder; move it away or rename the sweep")
        return
    changed = _spec_difference(_load_frozen_spec(sweep_dir).to_dict(), spec.to_dict())
    if changed:
        _fail(
            f"{sweep_dir} holds a sweep with a different spec (differs in {', '.join(changed[:4])}); "
            "pass --overwrite to replace it (deleting its runs), or change 'name' in the spec"
        )


def _clear_folder(sweep_dir: Location) -> None:
    """--overwrite: everything but the lock file goes (the caller holds the lock)."""
    if sweep_dir.exists():
        for child in sweep_dir.iterdir():
            if child.name != LOCK_FILE:
                child.remove()


def _survey(spec: SweepSpec, sweep_dir: Location, runs: list[grid.RunConfig]) -> completion.Survey:
    """Every run's state from the rows on disk, with a warning for each damaged one."""
    found = completion.survey(spec, sweep_dir, [r.run_id for r in runs])
    if found.table_problem:
        _warn(f"{found.table_problem}; it is rebuilt from the spec and the metrics on disk")
    return found


def _runs_table(runs: list[grid.RunConfig], pack_of: dict[str, str], status: dict[str, str], node_of: dict[str, str]) -> pd.DataFrame:
    """One row per run: ids, hyperparameters, status, and the Ray node that trained its pack."""
    rows = [
        {
            "run_id": r.run_id,
            "pack_id": pack_of.get(r.run_id, ""),
            **r.hyperparameters(),
            "status": status.get(r.run_id, "pending"),
            "node_id": node_of.get(r.run_id, ""),
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=["run_id", "pack_id", *HYPERPARAMETERS, "status", "node_id"])


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


def _missing_folders(sweep_dir: Location) -> list[Path]:
    """The local folders from ``sweep_dir`` up that do not exist yet, innermost first."""
    missing: list[Path] = []
    folder = sweep_dir.local
    while folder is not None and not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


class _Driver:
    """One driver's hold on a results folder: its lock, taken before Ray starts, and on the way
    out the Ray it started stopped, the lock released and a folder it created removed if
    nothing was written."""

    def __init__(self, sweep_dir: Location):
        self.sweep_dir = sweep_dir
        self.created = _missing_folders(sweep_dir)  # made by the lock below; removed again if left empty
        self.lock = _lock(sweep_dir)
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
            for folder in self.created:  # innermost first
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def _drive(sweep_dir: Location, spec: SweepSpec, work) -> None:
    """Run ``work(driver)`` holding the folder's lock, with Ctrl-C and SIGTERM handled: the
    first signal stops the sweep gracefully, and the command ends with the resume command and
    exit code 128 + the signal (also when the signal came during the last clean-up)."""
    with interrupts.handled():
        driver = _Driver(sweep_dir)
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
        stopped = interrupts.Interrupted(signum)
        if completed:  # the signal came during the last clean-up: nothing was cut short
            errors.print(f"interrupted by {stopped.name} while exiting; the command had finished its work", markup=False)
            raise typer.Exit(stopped.exit_code)
        _say_interrupted(stopped, sweep_dir, unfinished)


# ----------------------------------------------------------------------------- planning


def _local_slots(spec: SweepSpec, address: str | None, num_cpus: int | None) -> int | None:
    """Trial slots of the local Ray this command would start (None: a cluster's, or GPUs, which
    are only known once Ray is up)."""
    if address or os.environ.get("RAY_ADDRESS") or spec.resources.gpus_per_trial > 0:
        return None
    cpus = num_cpus or os.cpu_count() or 1
    slots = int(cpus / spec.resources.cpus_per_trial)
    if spec.resources.max_concurrent is not None:
        slots = min(slots, spec.resources.max_concurrent)
    return max(1, slots)


def _plan(spec: SweepSpec, *, runs_left: int | None = None, slots: int | None = None, pack_size: int | None = None) -> plan.Plan:
    from grokgrid import train  # builds one run's model to count its parameters

    return plan.make_plan(spec, runs_left=runs_left, slots=slots, pack_size=pack_size,
                          parameters_per_run=train.parameters_per_run(spec))


def _confirm_size(spec: SweepSpec, address: str | None, num_cpus: int | None, pack_size: int | None, yes: bool) -> None:
    """A very large sweep (plan.CONFIRM_RUNS runs, or plan.CONFIRM_HOURS by the estimate) starts
    only after a yes: at a prompt, or --yes where there is no terminal to ask at."""
    if yes:
        return
    estimate = _plan(spec, slots=_local_slots(spec, address, num_cpus), pack_size=pack_size)
    if not estimate.needs_confirmation():
        return
    question = f"this sweep is large: {estimate.describe()}"
    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(f"{question}. Start it?", default=False):
            return
        errors.print("not started; nothing written", markup=False)
        raise typer.Exit(1)
    _fail(f"{question}; pass --yes to start it, or --dry-run to see its plan")


def _dry_run(spec: SweepSpec, sweep_dir: Location, address: str | None, num_cpus: int | None,
             pack_size: int | None, overwrite: bool) -> None:
    """Print what `grokgrid sweep` would do; starts no Ray and writes nothing."""
    left = None
    if not overwrite and (sweep_dir / store.SPEC_FILE).is_file():
        runs = grid.expand(spec)
        left = len(runs) - len(completion.survey(spec, sweep_dir, [r.run_id for r in runs]).finished)
    estimate = _plan(spec, runs_left=left, slots=_local_slots(spec, address, num_cpus), pack_size=pack_size)
    console.print(f"plan: {estimate.describe()}", markup=False)
    if estimate.packs is None:
        console.print("(packs and time depend on the cluster's resources, known once Ray is reached)", markup=False)
    console.print(f"results would go to {sweep_dir}" + ("; it already holds this sweep" if left is not None else ""), markup=False)
    if estimate.needs_confirmation():
        console.print("a sweep this large asks for confirmation (or --yes) before it starts", markup=False)
    console.print("dry run: nothing started, nothing written", markup=False)


# ----------------------------------------------------------------------------- commands


@app.command(cls=_Command)
def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML), e.g. sweeps/quickstart.yaml.", show_default=False),
    results: str = typer.Option(
        "results", "--storage", "--results",
        help="Where the sweep's results folder goes: a local or NFS folder, or a pyarrow filesystem URI "
        "(s3://bucket/prefix, gs://bucket/prefix, file:///path) that every Ray node can reach.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing results folder of this sweep first (its trained runs too)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all)."),
    cpus_per_trial: Optional[float] = typer.Option(None, "--cpus-per-trial", help=CPUS_HELP),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", help=GPUS_HELP),
    pack_size: Optional[int] = typer.Option(None, "--pack-size", min=1, help="Runs per trial (default: the spec's resources.pack_size)."),
    connect_timeout: float = typer.Option(CONNECT_TIMEOUT, "--connect-timeout", min=0.1, help=CONNECT_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=f"Start a very large sweep (>= {plan.CONFIRM_RUNS:,} runs or ~{plan.CONFIRM_HOURS:g} h) without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, packs, run-steps, a rough time) and exit: no Ray, nothing written."),
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
    _check_folder(spec, sweep_dir, overwrite)
    console.print(
        f"[bold]grokgrid {__version__}[/] sweep [bold]{spec.name}[/]: {grid.count(spec):,} runs, "
        f"{spec.training.steps:,} steps each"
    )
    if dry_run:
        _dry_run(spec, sweep_dir, address, num_cpus, pack_size, overwrite)
        return
    _confirm_size(spec, address, num_cpus, pack_size, yes)

    def work(driver: _Driver) -> None:
        if overwrite:
            _clear_folder(sweep_dir)
        _run(driver, spec, grid.expand(spec), address, num_cpus, connect_timeout, pack_size, resume=False)
        if report:
            _classify(sweep_dir, spec)
            _report(sweep_dir, axes=None)

    _drive(sweep_dir, spec, work)



def _run(driver: _Driver, spec: SweepSpec, runs: list[grid.RunConfig], address: str | None, num_cpus: int | None,
         timeout: float, pack_size: int | None, *, resume: bool) -> None:
    """Train the runs not finished (judged from their rows on disk) and record every run's state."""
    sweep_dir = driver.sweep_dir
    found = _survey(spec, sweep_dir, runs)
    for state in found.damaged[:5]:
        _warn(f"run {state.run_id}: {state.damage}; it is trained again from step 0")
    if len(found.damaged) > 5:
        _warn(f"... and {len(found.damaged) - 5} more damaged runs, each trained again from step 0")
    done = found.finished
    todo = [r for r in runs if r.run_id not in done]
    if resume:
        console.print(f"[bold]grokgrid {__version__}[/] resume [bold]{spec.name}[/]: {len(runs):,} runs, "
                      f"{len(done):,} done, {len(todo):,} to finish")
    elif done:
        console.print(f"{len(done):,} runs already done in {sweep_dir}; {len(todo):,} left to run")
    previous, nodes = found.recorded("pack_id"), found.recorded("node_id")
    node_of = {r: n for r, n in nodes.items() if r in done}
    if not todo:
        _write_tables(spec, sweep_dir, runs, previous, {r: "done" for r in done}, node_of)  # new criteria, a rebuilt table
        _prune_checkpoints(sweep_dir)  # left by a sweep stopped between its last run and its clean-up
        console.print(f"nothing left to run: all {len(runs):,} runs are done; results in {sweep_dir}")
        return
    started = time.perf_counter()
    driver.tune_sweep, driver.started_ray = _connect(address, num_cpus, timeout)
    tune_sweep = driver.tune_sweep
    _check_resources(tune_sweep, spec)
    if resume:
        packs, fresh = _regroup(todo, previous)
        packs += _make_packs(tune_sweep, spec, fresh, None)[0] if fresh else []
        message = f"{len(todo):,} runs in {len(packs):,} packs; each continues from its last checkpoint"
    else:
        packs, size = _make_packs(tune_sweep, spec, todo, pack_size)
        message = f"{len(todo):,} runs in {len(packs):,} packs of up to {size} (one Ray Tune trial each)"
    pack_of = {**previous, **{r.run_id: p.pack_id for p in packs for r in p.runs}}
    table = _write_tables(spec, sweep_dir, runs, pack_of, {r: "done" for r in done}, node_of)
    console.print(message)
    estimate = _plan(spec, runs_left=len(todo), slots=tune_sweep.parallel_slots(spec.resources),
                     pack_size=max(len(p.runs) for p in packs))
    console.print(f"plan: {estimate.describe()}", markup=False)
    _train(tune_sweep, spec, sweep_dir, packs, table, restore=resume, started=started)


def _write_tables(spec: SweepSpec, sweep_dir: Location, runs, pack_of: dict[str, str], status: dict[str, str],
                  node_of: dict[str, str]) -> pd.DataFrame:
    table = _runs_table(runs, pack_of, status, node_of)
    sweep_dir.mkdir()
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec))
    store.write_runs(sweep_dir, table)
    return table


def _connect(address: str | None, num_cpus: int | None, timeout: float = CONNECT_TIMEOUT):
    """Start (or join) Ray; returns the sweep module (Ray is imported only when a sweep runs)
    and whether this call connected (False: this process had Ray up already)."""
    from grokgrid import sweep as tune_sweep

    target = address or os.environ.get("RAY_ADDRESS")
    console.print("starting a local Ray..." if not target else f"joining Ray at {target}...")
    option = "--address" if address else "RAY_ADDRESS"
    try:
        started = tune_sweep.connect(address=address, num_cpus=num_cpus, timeout=timeout)
    except tune_sweep.ClusterUnusable as exc:
        _fail(f"{option} {target}: {exc}; check the address (or --connect-timeout), or drop {option} to start a local Ray")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        _fail(f"{option} {target}: cannot reach a Ray cluster ({' '.join(str(exc).split())}); check the address or drop {option}")
    return tune_sweep, started


def _check_resources(tune_sweep, spec: SweepSpec) -> None:
    try:
        tune_sweep.check_resources(spec.resources)
    except tune_sweep.ClusterUnusable as exc:
        _fail(f"{exc}: no trial could ever start; lower it in the spec or with --cpus-per-trial / --gpus-per-trial, "
              "or use a cluster with such a node")


def _make_packs(tune_sweep, spec: SweepSpec, todo: list[grid.RunConfig], pack_size: int | None) -> tuple[list[grid.Pack], int]:
    from grokgrid import train

    size = pack_size or spec.resources.pack_size
    if size == "auto":
        slots = tune_sweep.parallel_slots(spec.resources)
        size = grid.auto_pack_size(len(todo), slots, spec.resources.gpus_per_trial > 0, train.parameters_per_run(spec))
    return grid.pack(todo, size), size


def _train(tune_sweep, spec: SweepSpec, sweep_dir: Location, packs: list[grid.Pack], table: pd.DataFrame, *,
           restore: bool, started: float) -> None:
    failed = _launch_with_progress(tune_sweep, spec, sweep_dir, packs, table, restore=restore)
    left = _unfinished_packs(packs, table)
    if left and restore:
        # Tune's restored state called these packs finished, but their rows on disk are not
        # whole (damaged since): train them again, afresh.
        console.print(f"{len(left)} pack(s) are not finished on disk; training them again", markup=False)
        failed = _launch_with_progress(tune_sweep, spec, sweep_dir, left, table, restore=False)
        left = _unfinished_packs(left, table)
    if failed:
        errors.print(f"{failed} run(s) failed; their status is 'failed' in {sweep_dir / store.RUNS_FILE}; "
                     f"`grokgrid resume {sweep_dir}` tries them again", markup=False)
    if left:
        n = sum(len(p.runs) for p in left)
        errors.print(f"{n} run(s) ended without all their rows on disk; `grokgrid resume {sweep_dir}` trains them again", markup=False)
    elif (table["status"] == "done").all():
        _prune_checkpoints(sweep_dir)
    console.print(f"trained in {time.perf_counter() - started:.1f} s; results in {sweep_dir}")


def _unfinished_packs(packs: list[grid.Pack], table: pd.DataFrame) -> list[grid.Pack]:
    """Packs with a run neither done nor failed (judged from the data by the launch)."""
    status = dict(zip(table["run_id"], table["status"]))
    return [p for p in packs if any(status.get(r.run_id) == "pending" for r in p.runs)]


def _prune_checkpoints(sweep_dir: Location) -> None:
    """Every run is finished: the pack checkpoints (ours and Tune's copies) can only ever be
    resumed into nothing; Tune's experiment state itself stays."""
    (sweep_dir / store.CHECKPOINTS_DIR).rmtree()
    for trial in (sweep_dir / store.TUNE_DIR).iterdir():
        if trial.name.startswith("pack_"):
            for folder in trial.iterdir():
                if folder.name.startswith("checkpoint_"):
                    folder.rmtree()


def _launch_with_progress(
    tune_sweep, spec: SweepSpec, sweep_dir: Location, packs: list[grid.Pack], table: pd.DataFrame, *, restore: bool = False
) -> int:
    """Train the packs with a progress bar (in run-steps); keep runs.parquet's status current.

    A run is marked done only when its rows on disk are whole to its end (completion.py), never
    because Ray reported no error; a failed pack's unfinished runs are marked failed; anything
    else stays pending. Returns how many runs failed.

    restore: continue Tune's saved experiment (``sweep.resume``) when it holds these packs, else
    launch them afresh (each pack still continues from its results-folder checkpoint)."""
    size_of = {p.pack_id: len(p.runs) for p in packs}
    reached = {p.pack_id: 0 for p in packs}
    n_runs = sum(size_of.values())
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
            if interrupts.requested() is not None:
                return  # trials stopped by an interrupt end as "errors" or "complete": neither is true
            states = completion.judge(spec, sweep_dir, outcome.run_ids)
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
    # event missed above: the outcomes and the data are the final word on every pack.
    ours = [o for o in outcomes if o.pack_id in size_of]
    for outcome in ours:
        record(outcome)
    store.write_runs(sweep_dir, table)
    in_packs = table["run_id"].isin([r.run_id for p in packs for r in p.runs])
    return int((in_packs & (table["status"] == "failed")).sum())


def _record_interrupt(driver: _Driver, spec: SweepSpec) -> int | None:
    """After Ctrl-C or SIGTERM: stop the trials, then record from the data which runs finished;
    returns how many did not (None when unknown). A second signal here stops at once: the folder
    is resumable as it is, since runs.parquet never calls a run done before its rows are whole."""
    sweep_dir = driver.sweep_dir
    try:
        driver.stop_ray()  # no trial of ours writes a row after this (a joined cluster drops them too)
        if not (sweep_dir / store.RUNS_FILE).is_file():
            return None
        runs = grid.expand(spec)
        found = completion.survey(spec, sweep_dir, [r.run_id for r in runs])
        if found.table is not None:
            table = found.table.copy()
            finished = table["run_id"].isin(found.finished)
            table.loc[finished, "status"] = "done"
            table.loc[~finished & (table["status"] == "done"), "status"] = "pending"
            store.write_runs(sweep_dir, table)
        return len(runs) - len(found.finished)
    except interrupts.Interrupted:
        return None


def _say_interrupted(exc: interrupts.Interrupted, sweep_dir: Location, unfinished: int | None) -> NoReturn:
    errors.print("", markup=False)
    if unfinished == 0:
        errors.print(f"interrupted by {exc.name}: every run is done; `grokgrid resume {sweep_dir}` classifies and reports", markup=False)
    else:
        counted = f"{unfinished} run(s) unfinished" if unfinished is not None else "the unfinished runs stay unfinished"
        errors.print(f"interrupted by {exc.name}: {counted}; their rows on disk and their packs' checkpoints are kept", markup=False)
        errors.print(f"resume with: grokgrid resume {sweep_dir}", markup=False)
    raise typer.Exit(exc.exit_code)


@app.command(cls=_Command)
def resume(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    report: bool = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all)."),
    cpus_per_trial: Optional[float] = typer.Option(None, "--cpus-per-trial", help=CPUS_HELP),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", help=GPUS_HELP),
    connect_timeout: float = typer.Option(CONNECT_TIMEOUT, "--connect-timeout", min=0.1, help=CONNECT_HELP),
) -> None:
    """Finish an interrupted sweep: every run not done continues from its pack's last checkpoint."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _with_resources(_load_frozen_spec(sweep_dir), cpus_per_trial, gpus_per_trial)

    def work(driver: _Driver) -> None:
        _run(driver, spec, grid.expand(spec), address, num_cpus, connect_timeout, None, resume=True)
        if report:
            _classify(sweep_dir, spec)
            _report(sweep_dir, axes=None)

    _drive(sweep_dir, spec, work)


def _regroup(todo: list[grid.RunConfig], pack_of: dict[str, str]) -> tuple[list[grid.Pack], list[grid.RunConfig]]:
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


@app.command(cls=_Command)
def status(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
) -> None:
    """How far a sweep is, from the rows on disk: runs done / started / pending / failed / damaged,
    and the phases so far. Only reads."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    found = completion.survey(spec, sweep_dir, [r.run_id for r in grid.expand(spec)])
    if found.table_problem:
        _warn(f"{found.table_problem}; `grokgrid resume {sweep_dir}` rebuilds it (the counts below come from the metrics)")
    for bad in found.unreadable:
        _warn(f"skipping unreadable metrics file {bad.path}: {bad.problem}")
    recorded = found.recorded("status")
    counts = dict.fromkeys(("done", "started", "pending", "failed", "damaged"), 0)
    for run_id, state in found.states.items():
        name = state.state
        if name in ("started", "pending") and recorded.get(run_id) == "failed":
            name = "failed"
        counts[name] += 1
    total = len(found.states) * spec.training.steps
    reached = completion.run_steps_done(spec, found.states.values())
    console.print(
        f"sweep [bold]{spec.name}[/]: {len(found.states):,} runs: {counts['done']:,} done, {counts['started']:,} started, "
        f"{counts['pending']:,} pending, {counts['failed']:,} failed"
        + (f", {counts['damaged']:,} damaged" if counts["damaged"] else "")
        + f"; {reached:,}/{total:,} run-steps done on disk ({100 * reached / max(1, total):.0f}%)"
    )
    for state in found.damaged[:5]:
        console.print(f"damaged: run {state.run_id}: {state.damage}", markup=False)
    holder = lock_holder(_lock_folder(sweep_dir))
    unfinished = len(found.states) - counts["done"]
    if holder is not None:
        console.print(f"driver: {holder.describe()} ({holder.command})", markup=False)
    elif unfinished or found.table_problem:
        console.print(f"no driver is running: `grokgrid resume {sweep_dir}` finishes the sweep", markup=False)
    sound = [r for r, s in found.states.items() if s.damage is None]
    labels = phases.classify(found.metrics[found.metrics["run_id"].isin(sound)], _criteria(spec, {}))
    finished = labels["run_id"].isin(found.finished)
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


def _classify(sweep_dir: Location, spec: SweepSpec, overrides: dict | None = None, out: Path | None = None) -> pd.DataFrame:
    """Label every run of the spec from its rows; refuses (exit 2) while any run's rows are
    damaged, since a label is never computed from partial rows."""
    criteria = _criteria(spec, overrides or {})
    found = completion.survey(spec, sweep_dir, [r.run_id for r in grid.expand(spec)])
    if found.damaged:
        first = found.damaged[0]
        more = f" (and {len(found.damaged) - 1} more run(s))" if len(found.damaged) > 1 else ""
        _fail(f"run {first.run_id}: {first.damage}{more}; labels are never computed from partial rows: "
              f"`grokgrid resume {sweep_dir}` trains the damaged run(s) again")
    labels = phases.classify(found.metrics, criteria)
    target = sweep_dir / store.LABELS_FILE if out is None else as_location(str(out))
    try:
        store.write_labels(sweep_dir, labels, target)
    except OSError as exc:
        _fail(f"cannot write {target} ({exc.strerror or ' '.join(str(exc).split())}); pass --out FILE to write the labels elsewhere")
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
    unfinished = len(found.states) - len(found.finished)
    if unfinished:
        console.print(f"note: {unfinished} of {len(found.states)} runs are unfinished: their labels are provisional "
                      f"until `grokgrid resume {sweep_dir}` finishes them", markup=False)
    console.print(f"labels: {target}")
    return labels


def _report(sweep_dir: Location, axes: tuple[str, str] | None, facet: str | None = None, out: Path | None = None) -> Path | Location:
    from grokgrid import report as report_module

    target = sweep_dir / store.REPORT_FILE if out is None else as_location(str(out))
    try:
        path = report_module.write_report(sweep_dir, axes=axes, facet=facet, out=out)
    except store.DamagedFile as exc:
        fix = f"`grokgrid classify {sweep_dir}` rebuilds it" if exc.path.name == store.LABELS_FILE else f"`grokgrid resume {sweep_dir}` rebuilds it"
        _fail(f"{exc}; {fix}")
    except ValueError as exc:
        _fail(f"{'--facet' if str(exc).startswith('facet') else '--axes'}: {exc}")
    except OSError as exc:
        _fail(f"cannot write {target} ({exc.strerror or ' '.join(str(exc).split())}); pass --out FILE to write the report elsewhere")
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
    sweep_dir = _location("RESULTS", text)
    if not sweep_dir.is_dir():
        _fail(f"{sweep_dir}: no such folder; give a sweep's results folder, e.g. results/quickstart")
    return sweep_dir


@app.command(cls=_Command)
def classify(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    threshold: Optional[float] = typer.Option(None, help="Accuracy threshold (default: the spec's phases.threshold)."),
    gap: Optional[int] = typer.Option(None, help="Grokking gap G in steps (default: the spec's phases.gap)."),
    budget: Optional[int] = typer.Option(None, help="Only steps <= budget count (default: the spec's phases.budget)."),
    semi_min: Optional[float] = typer.Option(None, help="Semi-grokking: lowest val-accuracy plateau (default: phases.semi_min)."),
    semi_max: Optional[float] = typer.Option(None, help="Semi-grokking: plateau below this (default: phases.semi_max)."),
    drop_min: Optional[float] = typer.Option(None, help="Un-/misgrokking: least val-accuracy drop (default: phases.drop_min)."),
    plateau_window: Optional[float] = typer.Option(None, help="Share of the last steps that makes the plateau (default: phases.plateau_window)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the labels here instead of <RESULTS>/labels.parquet (e.g. for a read-only folder)."),
) -> None:
    """Label every run comprehension / grokking / memorization / confusion (Liu et al.), with
    semi-grokking, ungrokking and misgrokking as details beside them. Writes labels.parquet."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    overrides = dict(threshold=threshold, gap=gap, budget=budget, semi_min=semi_min, semi_max=semi_max,
                     drop_min=drop_min, plateau_window=plateau_window)
    _classify(sweep_dir, spec, overrides, out)


@app.command(cls=_Command)
def report(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    axes: Optional[str] = typer.Option(None, help="Two swept hyperparameters for the phase diagram, e.g. repr_lr,decoder_lr."),
    facet: Optional[str] = typer.Option(None, help="A third hyperparameter: one row of phase-diagram panels per value, e.g. decoder_wd."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML here instead of <RESULTS>/report.html (a local copy of a report on s3://, or a read-only folder)."),
) -> None:
    """Write report.html: the phase diagram and the runs' learning curves (opens offline)."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    if not (sweep_dir / store.LABELS_FILE).is_file():
        _fail(f"{sweep_dir}: no {store.LABELS_FILE} yet; run `grokgrid classify {sweep_dir}` first")
    found = completion.survey(spec, sweep_dir, [r.run_id for r in grid.expand(spec)])
    if found.table_problem:
        _fail(f"{found.table_problem}; `grokgrid resume {sweep_dir}` rebuilds it")
    if found.unreadable:
        _fail(f"{found.unreadable[0].describe()}; curves are never drawn from partial rows: "
              f"`grokgrid resume {sweep_dir}` trains the damaged run(s) again")
    pair = None
    if axes is not None:
        parts = [a.strip() for a in axes.split(",")]
        if len(parts) != 2 or not all(parts):
            _fail(f"--axes {axes!r}: give two hyperparameters separated by a comma, e.g. repr_lr,decoder_lr")
        pair = (parts[0], parts[1])
    _report(sweep_dir, pair, facet, out)


def run() -> None:
    """The console script (`grokgrid`, `python -m grokgrid`). Once a command has returned, a
    signal during the way out (Ray's exit hooks can take a second) ends the process at once
    with 128 + the signal: everything is written by then, and a traceback from an exit hook
    would only confuse. The process ends with ``os._exit`` after running the exit hooks itself,
    because the interpreter's own shutdown resets SIGINT to the default action, and a Ctrl-C
    there would kill the process with no word and no exit code of ours."""
    interrupts.quiet_after_commands()
    code: int | str | None = 0
    try:
        app(prog_name="grokgrid")
    except SystemExit as exc:
        code = exc.code
    finally:
        interrupts.exit_quietly_on_signal()
    _exit_now(code)


def _exit_now(code: int | str | None) -> NoReturn:
    """Run the exit hooks and flush, then end the process without the interpreter's shutdown."""
    if isinstance(code, str):  # sys.exit("message") prints the message and exits 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(int(code or 0))


if __name__ == "__main__":  # pragma: no cover
    run()
