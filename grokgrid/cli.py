"""The ``grokgrid`` command line: sweep, classify, report.

Parses arguments, calls the modules below, prints progress and where things are. Bad input
(a spec, a path, an option) is one line on stderr naming what is wrong and how to fix it, exit
code 2, no traceback, and nothing written.
"""

from __future__ import annotations

import shutil
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

from grokgrid import __version__, grid, phases, store
from grokgrid.spec import HYPERPARAMETERS, SpecError, SweepSpec, dump_spec, load_spec, spec_from_dict

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
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _load_frozen_spec(sweep_dir: Path) -> SweepSpec:
    """The spec a results folder was made with (its frozen copy)."""
    path = sweep_dir / store.SPEC_FILE
    if not path.is_file():
        _fail(f"{sweep_dir}: not a grokgrid results folder (no {store.SPEC_FILE}); give results/<sweep>")
    try:
        return spec_from_dict(yaml.safe_load(path.read_text()))
    except (SpecError, yaml.YAMLError) as exc:
        _fail(f"{path}: the frozen spec is unreadable ({exc}); rerun the sweep with --overwrite")


def _prepare_folder(spec: SweepSpec, sweep_dir: Path, overwrite: bool) -> set[str]:
    """Check the results folder before writing anything; returns the ids of runs already done.

    Same spec again: runs marked done are kept and skipped. A different spec: refused unless
    --overwrite, since mixing two specs' runs in one folder would make the phase diagram lie.
    """
    if not sweep_dir.exists():
        return set()
    if not (sweep_dir / store.SPEC_FILE).is_file():
        if any(sweep_dir.iterdir()):
            _fail(f"{sweep_dir} exists and is not a grokgrid results folder; move it away or rename the sweep")
        return set()
    if overwrite:
        shutil.rmtree(sweep_dir)
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


def _runs_table(runs: list[grid.RunConfig], pack_of: dict[str, str], done: set[str]) -> pd.DataFrame:
    rows = [
        {
            "run_id": r.run_id,
            "pack_id": pack_of.get(r.run_id, ""),
            **r.hyperparameters(),
            "status": "done" if r.run_id in done else "pending",
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=["run_id", "pack_id", *HYPERPARAMETERS, "status"])


def _previous_packs(sweep_dir: Path) -> dict[str, str]:
    try:
        runs = store.read_runs(sweep_dir)
    except Exception:  # noqa: BLE001 - no (readable) runs table: no earlier packs to remember
        return {}
    return dict(zip(runs["run_id"], runs["pack_id"]))


# ----------------------------------------------------------------------------- commands


@app.command()
def sweep(
    spec_path: Path = typer.Argument(..., help="Sweep spec (YAML), e.g. sweeps/quickstart.yaml.", show_default=False),
    results: Path = typer.Option(Path("results"), "--results", help="Folder that holds one folder per sweep."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing results folder of this sweep first."),
    report: bool = typer.Option(True, "--report/--no-report", help="Classify the runs and write report.html at the end."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, host:6379, ray://...); default: start a local Ray."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray (default: all)."),
    pack_size: Optional[int] = typer.Option(None, "--pack-size", min=1, help="Runs per trial (default: the spec's resources.pack_size)."),
) -> None:
    """Run every run of a sweep spec as Ray Tune trials, then classify and report."""
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        _fail(str(exc))
    sweep_dir = (results / spec.name).resolve()
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
        failed = _run(spec, sweep_dir, runs, todo, done, address, num_cpus, pack_size)
        if failed:
            errors.print(f"{failed} run(s) failed; their status is 'failed' in {sweep_dir / store.RUNS_FILE}", markup=False)
        console.print(f"trained in {time.perf_counter() - started:.1f} s; results in {sweep_dir}")
    if report:
        _classify(sweep_dir, spec, threshold=None, gap=None, budget=None)
        _report(sweep_dir, axes=None)


def _run(spec: SweepSpec, sweep_dir: Path, runs, todo, done, address, num_cpus, pack_size) -> int:
    """Connect to Ray, pack the runs left to do, write the folder's tables, train; returns the
    number of failed runs."""
    from grokgrid import sweep as tune_sweep  # Ray is imported only when a sweep really runs
    from grokgrid import train

    console.print("starting a local Ray..." if not address else f"joining Ray at {address}...")
    try:
        tune_sweep.connect(address=address, num_cpus=num_cpus)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        _fail(f"--address {address}: cannot reach a Ray cluster ({exc}); check the address or drop --address")
    size = pack_size or spec.resources.pack_size
    if size == "auto":
        slots = tune_sweep.parallel_slots(spec.resources)
        size = grid.auto_pack_size(len(todo), slots, spec.resources.gpus_per_trial > 0, train.parameters_per_run(spec))
    packs = grid.pack(todo, size)
    pack_of = {**_previous_packs(sweep_dir), **{r.run_id: p.pack_id for p in packs for r in p.runs}}
    table = _runs_table(runs, pack_of, done)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec))
    store.write_runs(sweep_dir, table)
    console.print(f"{len(todo)} runs in {len(packs)} packs of up to {size} (one Ray Tune trial each)")
    return _launch_with_progress(tune_sweep, spec, sweep_dir, packs, table)


def _launch_with_progress(tune_sweep, spec: SweepSpec, sweep_dir: Path, packs: list[grid.Pack], table: pd.DataFrame) -> int:
    """Train the packs with a progress bar (in run-steps); keep runs.parquet's status current."""
    size_of = {p.pack_id: len(p.runs) for p in packs}
    reached = {p.pack_id: 0 for p in packs}
    n_runs = sum(size_of.values())
    failed = finished = 0
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
            reached[pack_id] = max(reached[pack_id], step)
            progress.update(bar, completed=sum(size_of[p] * s for p, s in reached.items()))

        def on_pack_done(outcome) -> None:
            nonlocal finished, failed
            table.loc[table["run_id"].isin(outcome.run_ids), "status"] = "done" if outcome.ok else "failed"
            store.write_runs(sweep_dir, table)
            finished += len(outcome.run_ids)
            if not outcome.ok:
                failed += len(outcome.run_ids)
                progress.console.print(f"[red]pack {outcome.pack_id} failed:[/] {outcome.error}", markup=True)
            advance(outcome.pack_id, spec.training.steps)
            progress.update(bar, description=f"training {finished}/{n_runs} runs done")

        tune_sweep.launch(spec, sweep_dir, packs, on_progress=advance, on_pack_done=on_pack_done)
    return failed


def _criteria(spec: SweepSpec, threshold: float | None, gap: int | None, budget: int | None) -> phases.PhaseCriteria:
    try:
        return phases.PhaseCriteria(
            threshold=spec.phases.threshold if threshold is None else threshold,
            gap=spec.phases.gap if gap is None else gap,
            budget=spec.phases.budget if budget is None else budget,
        )
    except ValueError as exc:
        _fail(f"{exc}; pass a valid value on the command line or fix 'phases' in the spec")


def _classify(sweep_dir: Path, spec: SweepSpec, threshold, gap, budget) -> pd.DataFrame:
    criteria = _criteria(spec, threshold, gap, budget)
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


def _report(sweep_dir: Path, axes: tuple[str, str] | None) -> Path:
    from grokgrid import report as report_module

    try:
        path = report_module.write_report(sweep_dir, axes=axes)
    except ValueError as exc:
        _fail(f"--axes: {exc}")
    console.print(f"report: {path}")
    return path


def _sweep_dir_argument(sweep_dir: Path) -> Path:
    if not sweep_dir.is_dir():
        _fail(f"{sweep_dir}: no such folder; give a sweep's results folder, e.g. results/quickstart")
    return sweep_dir.resolve()


@app.command()
def classify(
    sweep_dir: Path = typer.Argument(..., help="A sweep's results folder, e.g. results/quickstart.", show_default=False),
    threshold: Optional[float] = typer.Option(None, help="Accuracy threshold (default: the spec's phases.threshold)."),
    gap: Optional[int] = typer.Option(None, help="Grokking gap G in steps (default: the spec's phases.gap)."),
    budget: Optional[int] = typer.Option(None, help="Only steps <= budget count (default: the spec's phases.budget)."),
) -> None:
    """Label every run comprehension / grokking / memorization / confusion (Liu et al.)."""
    sweep_dir = _sweep_dir_argument(sweep_dir)
    spec = _load_frozen_spec(sweep_dir)
    _classify(sweep_dir, spec, threshold, gap, budget)


@app.command()
def report(
    sweep_dir: Path = typer.Argument(..., help="A sweep's results folder, e.g. results/quickstart.", show_default=False),
    axes: Optional[str] = typer.Option(None, help="Two swept hyperparameters for the phase diagram, e.g. repr_lr,decoder_lr."),
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
    _report(sweep_dir, pair)


def run() -> None:  # pragma: no cover - the console script's entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
