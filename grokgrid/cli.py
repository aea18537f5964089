"""The ``grokgrid`` command line: sweep, resume, status, classify, verify, report, figure, track, ls.

A thin layer over the library (api.py, driver.py): Typer options, rich output and exit codes.
Bad input (a spec, a path, an option) is one line on stderr naming what is wrong and how to fix
it (``Refused``), exit code 2, no traceback, and nothing written. Ctrl-C or SIGTERM during a
sweep stops it gracefully (driver.py): the runs that finished are recorded from their rows on
disk, and the command says how to resume and exits 130 / 143.
"""

from __future__ import annotations

import atexit
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperCommand

try:  # typer >= 0.20 parses with its own copy of click; older typer with click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors

from grokgrid import __version__, api, driver, folder, grid, interrupts, plan
from grokgrid.refusal import Refused

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


# ----------------------------------------------------------------------------- output


class _RichReporter(driver.Reporter):
    """The driver's words on the terminal: lines on stdout (alarms on stderr), a progress bar
    in run-steps while training, and the phases as a table."""

    def say(self, text: str, alarm: bool = False) -> None:
        # Not wrapped by rich: a line that ends in a path or URI stays one line to copy.
        (errors if alarm else console).print(text, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        _warn(text)

    @contextmanager
    def training(self, n_runs: int, run_steps: int) -> Iterator:
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("run-steps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task(f"training 0/{n_runs} runs done", total=run_steps)

            def update(done_steps: int, done_runs: int) -> None:
                progress.update(bar, completed=done_steps, description=f"training {done_runs}/{n_runs} runs done")

            yield update

    def verified(self, verification) -> None:
        for line in driver.verification_lines(verification):
            console.print(line, markup=False, soft_wrap=True)  # one line per claim, whatever the width

    def classified(self, labels, criteria, unfinished: int, runs: int, sweep_dir, target) -> None:
        from grokgrid import phases

        table = Table(
            title="phases",
            caption=f"threshold {criteria.threshold:g}, gap {criteria.gap}, budget {criteria.budget or 'all steps'}",
        )
        table.add_column("phase")
        table.add_column("runs", justify="right")
        for phase, count in phases.phase_counts(labels).items():
            table.add_row(phase, str(count))
        console.print(table)
        if unfinished:
            self.say(driver.unfinished_note(unfinished, runs, sweep_dir))
        console.print(f"labels: {target}")


_REPORTER = _RichReporter()


@contextmanager
def _refusals() -> Iterator[None]:
    """A library call's Refused is this command's one-line error and exit 2; a sweep stopped
    by a signal says what was kept and how to resume, and exits 128 + the signal."""
    try:
        yield
    except Refused as exc:
        _fail(str(exc))
    except driver.SweepInterrupted as stopped:
        if stopped.after_work:  # the signal came during the last clean-up: nothing was cut short
            errors.print(f"interrupted by {stopped.name} while exiting; the command had finished its work", markup=False)
            raise typer.Exit(stopped.exit_code) from None
        _say_interrupted(stopped)


def _say_interrupted(stopped: driver.SweepInterrupted) -> NoReturn:
    sweep_dir = stopped.sweep_dir
    errors.print("", markup=False)
    if stopped.unfinished == 0:
        errors.print(f"interrupted by {stopped.name}: every run is done; `grokgrid resume {sweep_dir}` classifies and reports", markup=False)
    else:
        counted = f"{stopped.unfinished} run(s) unfinished" if stopped.unfinished is not None else "the unfinished runs stay unfinished"
        errors.print(f"interrupted by {stopped.name}: {counted}; their rows on disk and their packs' checkpoints are kept", markup=False)
        errors.print(f"resume with: grokgrid resume {sweep_dir}", markup=False)
    raise typer.Exit(stopped.exit_code) from None


def _confirm_size(spec, address: str | None, num_cpus: int | None, pack_size: int | None, yes: bool) -> None:
    """A very large sweep (plan.CONFIRM_RUNS runs, or plan.CONFIRM_HOURS by the estimate) starts
    only after a yes: at a prompt, or --yes where there is no terminal to ask at."""
    large = None if yes else driver.large_sweep(spec, address, num_cpus, pack_size)
    if large is None:
        return
    question = f"this sweep is large: {large.describe()}"
    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(f"{question}. Start it?", default=False):
            return
        errors.print("not started; nothing written", markup=False)
        raise typer.Exit(1)
    _fail(f"{question}; pass --yes to start it, or --dry-run to see its plan")


# ----------------------------------------------------------------------------- commands

# The options sweep, resume and refine share (each command builds its own click option from these).
REPORT_OPTION = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end.")
ADDRESS_OPTION = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray.")
NUM_CPUS_OPTION = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all).")
CPUS_PER_TRIAL_OPTION = typer.Option(None, "--cpus-per-trial", help=CPUS_HELP)
GPUS_PER_TRIAL_OPTION = typer.Option(None, "--gpus-per-trial", help=GPUS_HELP)
CONNECT_TIMEOUT_OPTION = typer.Option(driver.CONNECT_TIMEOUT_S, "--connect-timeout", min=0.1, help=CONNECT_HELP)
TRACKER_HELP = ("TRACKER[=WHERE]: mlflow[=URI] (default $MLFLOW_TRACKING_URI, else the file store ./mlruns), "
                "tensorboard[=FOLDER] (default ./tensorboard), wandb[=[ENTITY/]PROJECT] (default $WANDB_PROJECT, "
                "else grokgrid). Repeat for several.")
LOG_TO_OPTION = typer.Option(None, "--log-to", metavar="TRACKER[=WHERE]",
                             help="Send the labelled runs to an experiment tracker at the end. " + TRACKER_HELP)


@app.command(cls=_Command)
def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Sweep spec (YAML), e.g. sweeps/quickstart.yaml.", show_default=False),
    results: str = typer.Option(
        "results", "--storage", "--results",
        help="Where the sweep's results folder goes: a local or NFS folder, or a pyarrow filesystem URI "
        "(s3://bucket/prefix, gs://bucket/prefix, file:///path) that every Ray node can reach.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing results folder of this sweep first (its trained runs too)."),
    report: bool = REPORT_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
    num_cpus: Optional[int] = NUM_CPUS_OPTION,
    cpus_per_trial: Optional[float] = CPUS_PER_TRIAL_OPTION,
    gpus_per_trial: Optional[float] = GPUS_PER_TRIAL_OPTION,
    pack_size: Optional[int] = typer.Option(None, "--pack-size", min=1, help="Runs per trial (default: the spec's resources.pack_size)."),
    connect_timeout: float = CONNECT_TIMEOUT_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help=f"Start a very large sweep (>= {plan.CONFIRM_RUNS:,} runs or ~{plan.CONFIRM_HOURS:g} h) without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, packs, run-steps, a rough time) and exit: no Ray, nothing written."),
    log_to: Optional[List[str]] = LOG_TO_OPTION,
) -> None:
    """Run every run of a sweep spec as Ray Tune trials, then classify and report."""
    with _refusals():
        api.check_log_to(log_to, report)  # before anything is planned, trained or printed
        # The task's files too, even for a dry run: its plan sizes the model from the data.
        spec = folder.ready_to_train(driver.with_resources(api.load(spec_path), cpus_per_trial, gpus_per_trial))
        sweep_dir = folder.location("--storage", results) / spec.name
        folder.check_new_sweep(spec, sweep_dir, overwrite)
        console.print(
            f"[bold]grokgrid {__version__}[/] sweep [bold]{spec.name}[/]: {grid.count(spec):,} runs, "
            f"{spec.total_steps:,} steps each"
        )
        if dry_run:
            for line in driver.dry_run(spec, sweep_dir, address, num_cpus, pack_size, overwrite):
                console.print(line, markup=False)
            return
        _confirm_size(spec, address, num_cpus, pack_size, yes)
        api.run_sweep(spec, results, overwrite=overwrite, report=report, address=address, num_cpus=num_cpus,
                      pack_size=pack_size, connect_timeout=connect_timeout, yes=True, reporter=_REPORTER, log_to=log_to)


@app.command(cls=_Command)
def resume(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    report: bool = REPORT_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
    num_cpus: Optional[int] = NUM_CPUS_OPTION,
    cpus_per_trial: Optional[float] = CPUS_PER_TRIAL_OPTION,
    gpus_per_trial: Optional[float] = GPUS_PER_TRIAL_OPTION,
    connect_timeout: float = CONNECT_TIMEOUT_OPTION,
    log_to: Optional[List[str]] = LOG_TO_OPTION,
) -> None:
    """Finish an interrupted sweep: every run not done continues from its pack's last checkpoint."""
    with _refusals():
        api.resume_sweep(sweep_dir, report=report, address=address, num_cpus=num_cpus, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial, connect_timeout=connect_timeout, reporter=_REPORTER,
                         log_to=log_to)


@app.command(cls=_Command)
def refine(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Rounds to run now (default: those the spec's refine section has left, else 1)."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Cap on the runs all rounds add together (default: the spec's, else none)."),
    axes: Optional[str] = typer.Option(None, "--axes", help="One or two axes to refine, e.g. repr_lr,decoder_lr (default: the spec's, else the first two swept)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs the next round would add and exit: nothing trained or written."),
    report: bool = REPORT_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
    num_cpus: Optional[int] = NUM_CPUS_OPTION,
    cpus_per_trial: Optional[float] = CPUS_PER_TRIAL_OPTION,
    gpus_per_trial: Optional[float] = GPUS_PER_TRIAL_OPTION,
    connect_timeout: float = CONNECT_TIMEOUT_OPTION,
    log_to: Optional[List[str]] = LOG_TO_OPTION,
) -> None:
    """Add runs where the phase diagram's labels change (boundary refinement), train and label them."""
    with _refusals():
        api.check_log_to(log_to, report)  # before anything is planned or trained
        if dry_run:
            points = api.refine_plan(sweep_dir, max_runs=max_runs, axes=axes)
            seeds = len(api.open(sweep_dir).spec.grid.seed)
            console.print(f"next refinement round: {len(points):,} points x {seeds} seed(s) = {len(points) * seeds:,} runs", markup=False)
            for point in points[:20]:
                console.print("  " + ", ".join(f"{axis} {point[axis]:.4g}" for axis in point), markup=False)
            if len(points) > 20:
                console.print(f"  ... and {len(points) - 20:,} more", markup=False)
            console.print("dry run: nothing trained, nothing written", markup=False)
            return
        api.refine_sweep(sweep_dir, rounds=rounds, max_runs=max_runs, axes=axes, report=report, address=address,
                         num_cpus=num_cpus, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                         connect_timeout=connect_timeout, reporter=_REPORTER, log_to=log_to)


@app.command(cls=_Command)
def status(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
) -> None:
    """How far a sweep is, from the rows on disk: runs done / started / pending / failed / damaged,
    and the phases so far. Only reads."""
    with _refusals():
        now = api.status(sweep_dir)
    where = now.sweep_dir
    if now.table_problem:
        _warn(f"{now.table_problem}; `grokgrid resume {where}` rebuilds it (the counts below come from the metrics)")
    for bad in now.unreadable:
        _warn(f"skipping unreadable metrics file {bad.path}: {bad.problem}")
    counts = now.counts
    console.print(
        f"sweep [bold]{now.spec.name}[/]: {now.runs:,} runs: {counts['done']:,} done, {counts['started']:,} started, "
        f"{counts['pending']:,} pending, {counts['failed']:,} failed"
        + (f", {counts['damaged']:,} damaged" if counts["damaged"] else "")
        + f"; {now.run_steps_done:,}/{now.run_steps_total:,} run-steps done on disk "
        f"({100 * now.run_steps_done / max(1, now.run_steps_total):.0f}%)"
    )
    for state in now.damaged[:5]:
        console.print(f"damaged: run {state.run_id}: {state.damage}", markup=False)
    refine = now.spec.refine
    if refine is not None:
        seeds = len(now.spec.grid.seed)
        console.print(f"refinement along {', '.join(refine.axes)}: {refine.rounds_done} of {refine.rounds} round(s) recorded, "
                      f"{refine.runs_added(seeds):,} runs added" + (f" (at most {refine.max_runs:,})" if refine.max_runs else ""),
                      markup=False)
    if now.driver is not None:
        console.print(f"driver: {now.driver.describe()} ({now.driver.command})", markup=False)
    elif now.unfinished or now.table_problem:
        console.print(f"no driver is running: `grokgrid resume {where}` finishes the sweep", markup=False)
    table = Table(title="phases so far", caption="classified now from the metrics on disk; unfinished runs' labels are provisional")
    table.add_column("phase")
    table.add_column("done runs", justify="right")
    table.add_column("unfinished runs", justify="right")
    for phase, done in now.phases_done.items():
        table.add_row(phase, str(done), str(now.phases_unfinished.get(phase, 0)))
    console.print(table)


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
    plateau_rise_max: Optional[float] = typer.Option(None, help="Semi-grokking: the plateau may be at most this above the val acc half way from the jump to the end (default: phases.plateau_rise_max)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the labels here instead of <RESULTS>/labels.parquet (e.g. for a read-only folder)."),
) -> None:
    """Label every run comprehension / grokking / memorization / confusion (Liu et al.), with
    semi-grokking, ungrokking and misgrokking as details beside them. Writes labels.parquet."""
    with _refusals():
        api.classify(sweep_dir, out=out, reporter=_REPORTER, threshold=threshold, gap=gap, budget=budget, semi_min=semi_min,
                     semi_max=semi_max, drop_min=drop_min, plateau_window=plateau_window, plateau_rise_max=plateau_rise_max)


@app.command(cls=_Command)
def report(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    axes: Optional[str] = typer.Option(None, help="Two swept hyperparameters for the phase diagram, e.g. repr_lr,decoder_lr."),
    facet: Optional[str] = typer.Option(None, help="A third hyperparameter: one row of phase-diagram panels per value, e.g. decoder_wd."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the HTML here instead of <RESULTS>/report.html (a local copy of a report on s3://, or a read-only folder)."),
) -> None:
    """Write report.html: the phase diagram and the runs' learning curves (opens offline)."""
    with _refusals():
        api.report(sweep_dir, axes, facet, out, reporter=_REPORTER)


@app.command(cls=_Command)
def figure(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    kind: str = typer.Option("phase", "--kind", help="phase (the phase diagram), delay (t_val - t_train), accuracy "
                             "(final val accuracy), or curves (train/val accuracy against the step)."),
    axes: Optional[str] = typer.Option(None, "--axes", help="Two swept hyperparameters, x then y, e.g. repr_lr,decoder_lr "
                                       "(default: the report's). Not for curves."),
    facet: Optional[str] = typer.Option(None, "--facet", help="Another hyperparameter: one panel per value."),
    out: Optional[str] = typer.Option(None, "--out", help="The file; its suffix picks the format: .pdf, .svg or .png "
                                      "(default: <RESULTS>/figures/<kind>.pdf)."),
    width: Optional[float] = typer.Option(None, "--width", help="Width in inches (default 3.4, one journal column; "
                                          "about 7 is a page)."),
    dpi: Optional[int] = typer.Option(None, "--dpi", help="Resolution of a PNG (default 300)."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", help="Curves: at most this many runs, chosen per phase as the "
                                           "report does (default 16)."),
    runs: Optional[str] = typer.Option(None, "--runs", metavar="ID,ID,...", help="Curves: exactly these run ids."),
) -> None:
    """Write a figure for a paper (PDF, SVG or PNG): the phase diagram, the grokking delay or the
    final val accuracy over two swept hyperparameters, or the learning curves. Only reads the sweep."""
    with _refusals():
        api.figure(sweep_dir, kind, axes=axes, facet=facet, out=out, width=width, dpi=dpi, max_runs=max_runs, runs=runs,
                   reporter=_REPORTER)


@app.command(cls=_Command)
def track(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
    to: List[str] = typer.Option(..., "--to", metavar="TRACKER[=WHERE]", help=TRACKER_HELP, show_default=False),
) -> None:
    """Send a labelled sweep's finished runs to MLflow, TensorBoard or W&B: one tracker run per
    run (hyperparameters, per-step metrics, phase label), grouped by sweep. Sending again
    replaces the runs that changed and leaves the others."""
    with _refusals():
        api.track(sweep_dir, to, reporter=_REPORTER)


@app.command(cls=_Command)
def verify(
    sweep_dir: str = typer.Argument(..., metavar="RESULTS", help=SWEEP_DIR_HELP, show_default=False),
) -> None:
    """Check the spec's claims (its expect: section) on the runs: one PASS or FAIL line per claim,
    with the measured value beside the expected one. Exit 0 when every claim passes, 1 when one
    fails, 2 on bad input. Only reads."""
    with _refusals():
        verification = api.verify(sweep_dir)
    for line in driver.verification_lines(verification):
        console.print(line, markup=False, soft_wrap=True)  # one line per claim, whatever the width
    if not verification.passed:
        raise typer.Exit(1)


@app.command(cls=_Command)
def ls(
    root: str = typer.Argument("results", metavar="ROOT", help="A folder of sweeps' results folders (default: results)."),
) -> None:
    """The sweeps under a results root: runs, how many are done, whether a driver is running,
    and their phases (from labels.parquet). Only reads."""
    with _refusals():
        found = api.ls(root)
    if not found:
        console.print(f"no sweeps in {root} (a sweep's folder holds spec.yaml)", markup=False)
        return
    table = Table(title=f"sweeps in {root}")
    for name, justify in (("sweep", "left"), ("runs", "right"), ("done", "right"), ("driver", "left"), ("phases", "left")):
        table.add_column(name, justify=justify)
    for item in found:
        if item.phases is not None:
            phases_text = ", ".join(f"{n} {p}" for p, n in item.phases.items() if n) or "none labelled"
        else:
            phases_text = "not classified"
        if item.problem:
            phases_text = f"{phases_text} ({item.problem})"
        table.add_row(item.name, f"{item.runs:,}", f"{item.done:,}", "running" if item.running else "-", phases_text)
    console.print(table)


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
