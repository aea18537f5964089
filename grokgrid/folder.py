"""A sweep's results folder as the driver keeps it: where it is, the spec frozen in it, whether
a new spec may continue it, its lock, its runs table and its clean-up.

Every check here runs before anything is written and answers bad input with ``Refused`` (one
line naming the problem and the fix). No Ray and no torch: ``status``, ``classify`` and
``report`` use this module too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pandas as pd
import yaml

from grokgrid import completion, grid, store
from grokgrid.lock import LOCK_FILE, SweepLock, SweepLocked
from grokgrid.refusal import Refused
from grokgrid.spec import HYPERPARAMETERS, SpecError, SweepSpec, dump_spec, parse_yaml, spec_from_dict
from grokgrid.location import Location, StorageError, as_location

# Spec sections that never change what training produces: how a sweep executes (resources),
# how its runs are read (phase criteria, the claims of expect) and its description. A folder's
# spec may differ from a new one in these; the new values are recorded and the runs relabelled,
# none retrained.
NOT_TRAINING = ("resources.", "phases.", "description", "expect", "refine")


# ----------------------------------------------------------------------------- where


def location(option: str, text: str | os.PathLike) -> Location:
    """A results location given as ``option`` (a path or a filesystem URI), or Refused."""
    try:
        return as_location(str(text))
    except StorageError as exc:
        raise Refused(f"{option} {exc}; give a local folder or a URI such as s3://bucket/prefix "
                      "(pyarrow must support its scheme)") from None


def existing(text: str | os.PathLike | Location, option: str = "RESULTS") -> Location:
    """An existing sweep results folder, or Refused."""
    sweep_dir = text if isinstance(text, Location) else location(option, text)
    if not sweep_dir.is_dir():
        raise Refused(f"{sweep_dir}: no such folder; give a sweep's results folder, e.g. results/quickstart")
    return sweep_dir


def is_sweep(folder: Location) -> bool:
    return (folder / store.SPEC_FILE).is_file()


def is_foreign(sweep_dir: Location) -> bool:
    """A non-empty folder that is not a grokgrid results folder (never written into)."""
    return sweep_dir.exists() and not is_sweep(sweep_dir) and any(p.name != LOCK_FILE for p in sweep_dir.iterdir())


# ----------------------------------------------------------------------------- the frozen spec


def frozen_spec(sweep_dir: Location) -> SweepSpec:
    """The spec a results folder was made with (its frozen copy), or Refused."""
    path = sweep_dir / store.SPEC_FILE
    if not path.is_file():
        raise Refused(f"{sweep_dir}: not a grokgrid results folder (no {store.SPEC_FILE}); give results/<sweep>")
    rerun = "rerun the sweep from its YAML (`grokgrid sweep SPEC`), with --overwrite if it is refused"
    try:
        return spec_from_dict(parse_yaml(path.read_text()))
    except RecursionError:
        raise Refused(f"{path}: the frozen spec is unreadable (nested too deeply); {rerun}") from None
    except (SpecError, yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise Refused(f"{path}: the frozen spec is unreadable ({' '.join(str(exc).split())}); {rerun}") from None


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def spec_difference(old: dict, new: dict, locations: tuple[str, ...] = ()) -> list[str]:
    """Fields whose change would make the folder mix two sweeps' results. ``locations``: the
    task's parameters that say where its files are (a copy elsewhere trains the same runs)."""
    a, b = _flatten(old), _flatten(new)
    moved = tuple(f"task.{name}" for name in locations)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not k.startswith(NOT_TRAINING) and k not in moved)


def ready_to_train(spec: SweepSpec) -> SweepSpec:
    """The spec as a sweep started here trains it, or Refused before anything is written: the
    task's files located for this machine (a relative mnist root made absolute against the
    current folder, which the frozen spec and the Ray trials then carry) and found. Only a sweep
    that trains calls this: reading a results folder never needs the task's files."""
    try:
        task = spec.task.located()
        task.check_available()
    except SpecError as exc:
        raise Refused(str(exc)) from None
    return spec if task == spec.task else dataclasses.replace(spec, task=task)


def check_new_sweep(spec: SweepSpec, sweep_dir: Location, overwrite: bool) -> None:
    """Refuse, before anything is written, a folder that holds another spec's sweep (mixing two
    specs' runs would make the phase diagram lie) unless overwrite, or one that is not ours.
    Where the task's files are may change (the runs are the same); the new place is recorded."""
    if is_foreign(sweep_dir):
        raise Refused(f"{sweep_dir} exists and is not a grokgrid results folder; move it away or rename the sweep")
    if not sweep_dir.exists() or overwrite or not is_sweep(sweep_dir):
        return
    changed = spec_difference(frozen_spec(sweep_dir).to_dict(), spec.to_dict(), spec.task.locations())
    if changed:
        raise Refused(
            f"{sweep_dir} holds a sweep with a different spec (differs in {', '.join(changed[:4])}); "
            "pass --overwrite to replace it (deleting its runs), or change 'name' in the spec"
        )


def with_recorded_rounds(spec: SweepSpec, sweep_dir: Location) -> SweepSpec:
    """The spec with the refinement rounds the folder's sweep has recorded (their runs stay part
    of it when the sweep is run again from its spec file, which knows nothing of them)."""
    if not is_sweep(sweep_dir):
        return spec
    recorded = frozen_spec(sweep_dir).refine
    if recorded is None or not recorded.points:
        return spec
    if spec.refine is None:
        return dataclasses.replace(spec, refine=recorded)
    if spec.refine.axes != recorded.axes:
        raise Refused(f"{sweep_dir} was refined along {', '.join(recorded.axes)}, the spec refines "
                      f"{', '.join(spec.refine.axes)}; use the same refine.axes, or --overwrite to start over")
    rounds = max(spec.refine.rounds, recorded.rounds_done)
    return dataclasses.replace(spec, refine=dataclasses.replace(spec.refine, rounds=rounds, points=recorded.points))


def clear(sweep_dir: Location) -> None:
    """--overwrite: everything but the lock file goes (the caller holds the lock)."""
    if sweep_dir.exists():
        for child in sweep_dir.iterdir():
            if child.name != LOCK_FILE:
                child.remove()


# ----------------------------------------------------------------------------- runs on disk


def survey(spec: SweepSpec, sweep_dir: Location) -> completion.Survey:
    """Every run of the spec, judged from the rows on disk (completion.survey)."""
    return completion.survey(spec, sweep_dir, [r.run_id for r in grid.expand(spec)])


def runs_table(runs: list[grid.RunConfig], pack_of: dict[str, str], status: dict[str, str], node_of: dict[str, str]) -> pd.DataFrame:
    """One row per run: ids, hyperparameters, status, and the Ray node that trained its pack."""
    rows = [
        {
            "run_id": r.run_id,
            "pack_id": pack_of.get(r.run_id, ""),
            **r.columns(),
            "status": status.get(r.run_id, "pending"),
            "node_id": node_of.get(r.run_id, ""),
        }
        for r in runs
    ]
    extra = list(dict.fromkeys(name for r in runs for name, _ in r.extra))  # a column per extra axis
    return pd.DataFrame(rows, columns=["run_id", "pack_id", *HYPERPARAMETERS, *extra, "status", "node_id"])


def write_tables(spec: SweepSpec, sweep_dir: Location, runs: list[grid.RunConfig], pack_of: dict[str, str],
                 status: dict[str, str], node_of: dict[str, str]) -> pd.DataFrame:
    """The frozen spec and runs.parquet, each written atomically; returns the runs table."""
    table = runs_table(runs, pack_of, status, node_of)
    sweep_dir.mkdir()
    store.atomic_write_text(sweep_dir / store.SPEC_FILE, dump_spec(spec))
    store.write_runs(sweep_dir, table)
    return table


def prune_checkpoints(sweep_dir: Location) -> None:
    """Every run is finished: the pack checkpoints (ours and Tune's copies) can only ever be
    resumed into nothing; Tune's experiment state itself stays."""
    (sweep_dir / store.CHECKPOINTS_DIR).rmtree()
    for trial in (sweep_dir / store.TUNE_DIR).iterdir():
        if trial.name.startswith("pack_"):
            for folder in trial.iterdir():
                if folder.name.startswith("checkpoint_"):
                    folder.rmtree()


# ----------------------------------------------------------------------------- the lock


def lock_folder(sweep_dir: Location) -> Path:
    """The local folder whose lock file guards the sweep: the results folder itself, or for
    results under a filesystem URI (no flock there) a folder of this machine's cache."""
    if sweep_dir.local is not None:
        return sweep_dir.local
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "grokgrid" / "locks" / hashlib.sha256(sweep_dir.uri.encode()).hexdigest()[:16]


def sweep_lock(sweep_dir: Location) -> SweepLock:
    return SweepLock(lock_folder(sweep_dir), label=str(sweep_dir))


def lock(sweep_dir: Location) -> SweepLock:
    """Take the sweep folder's lock for this driver's lifetime, or Refused naming its holder."""
    try:
        return sweep_lock(sweep_dir).acquire()
    except SweepLocked as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:
        raise Refused(f"{sweep_dir}: cannot create its lock file ({exc}); check the folder's permissions and free space") from None


def missing_folders(sweep_dir: Location) -> list[Path]:
    """The local folders from ``sweep_dir`` up that do not exist yet, innermost first."""
    missing: list[Path] = []
    folder = sweep_dir.local
    while folder is not None and not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
