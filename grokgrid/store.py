"""The results folder: one explicit Parquet schema per table, atomic writers, tolerant readers.

Everything a sweep produces lives under ``results/<sweep>/`` (layout in DESIGN.md section 1), a
local folder or a pyarrow filesystem URI (location.py); every function takes either. Writers never
leave a half-written file behind: they write a temp file whose name starts with "." (so readers
ignore it) and move it into place. Readers skip torn or foreign files
with a warning instead of crashing, and dedupe metric rows on (run_id, step).

No torch or Ray import here: reports must work on a laptop with only pandas and pyarrow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from grokgrid.location import Location, PathLike, as_location

# Per-step metrics: one row per (run, logged step). Types are explicit so that a part written
# by one worker never drifts (int vs float) from another's.
METRICS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        # The run's stage at this step (stages.py; 0 without stages). Added later: a part
        # written before it reads as stage 0, which is what every run was in then.
        pa.field("stage", pa.int64()),
        pa.field("train_loss", pa.float64()),
        pa.field("val_loss", pa.float64()),
        pa.field("train_acc", pa.float64()),
        pa.field("val_acc", pa.float64()),
        pa.field("weight_norm", pa.float64()),
        # Progress measures (NaN where one does not apply to the task or model; README).
        pa.field("repr_norm", pa.float64()),
        pa.field("decoder_norm", pa.float64()),
        pa.field("rqi", pa.float64()),
        pa.field("commutativity_acc", pa.float64()),
        pa.field("logit_efficiency", pa.float64()),
        pa.field("perturbed_entropy", pa.float64()),
        pa.field("elapsed_s", pa.float64()),
    ]
)
METRIC_COLUMNS = tuple(METRICS_SCHEMA.names)
# In the files, run_id is the hive partition (the folder name run_id=<id>), not a column, so that
# `pd.read_parquet("results/<sweep>/metrics")` and `pyarrow.dataset` read the folder as one table.
PART_SCHEMA = pa.schema([f for f in METRICS_SCHEMA if f.name != "run_id"])

# Phase labels: one row per run (see phases.py for the meaning of each column). The columns added
# after the first release (detail, t_semi, t_drop, plateau_val_acc) are nullable so that a labels
# file written before them still reads (as nulls) until `grokgrid classify` rewrites it.
LABELS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("phase", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("t_train", pa.int64()),
        pa.field("t_val", pa.int64()),
        pa.field("gap", pa.int64()),
        pa.field("t_semi", pa.int64()),
        pa.field("t_drop", pa.int64()),
        pa.field("final_train_acc", pa.float64()),
        pa.field("final_val_acc", pa.float64()),
        pa.field("max_val_acc", pa.float64()),
        pa.field("plateau_val_acc", pa.float64()),
        pa.field("last_step", pa.int64()),
        pa.field("val_before_train", pa.bool_()),
    ]
)

SPEC_FILE = "spec.yaml"
RUNS_FILE = "runs.parquet"
LABELS_FILE = "labels.parquet"
REPORT_FILE = "report.html"
METRICS_DIR = "metrics"
CHECKPOINTS_DIR = "checkpoints"
TUNE_DIR = "tune"

# ----------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    as_location(path).write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_table(path: PathLike, table: pa.Table) -> None:
    """Write a Parquet file atomically (temp name starts with '.' and does not end in .parquet)."""
    as_location(path).write_with(lambda stream: pq.write_table(table, stream), durable=False)


def _table(rows: Sequence[Mapping[str, object]] | pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema``'s columns; a missing or mistyped column is an error."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise ValueError(f"rows lack the column(s) {missing} of the schema")
    # Without pandas' schema metadata (a JSON blob of every column, 4 KB in each file's footer):
    # the schema is ours, and readers cast to it anyway.
    return pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False).replace_schema_metadata(None)


# ----------------------------------------------------------------------------- metrics


def metrics_part_path(sweep_dir: PathLike, run_id: str, first_step: int) -> Location:
    # Zero-padded so that lexical order is step order.
    return as_location(sweep_dir) / METRICS_DIR / f"run_id={run_id}" / f"part-{first_step:012d}.parquet"


def write_metrics_part(sweep_dir: PathLike, run_id: str, rows: Sequence[Mapping[str, object]]) -> Location | None:
    """Write one run's rows (consecutive steps) as one Parquet part; returns its location."""
    if not rows:
        return None
    if any(r["run_id"] != run_id for r in rows):
        raise ValueError(f"rows of another run in the part of run {run_id}")
    # Rows without a stage (a spec without stages, a caller from before them) are stage 0.
    table = _table([r if "stage" in r else {**r, "stage": 0} for r in rows], PART_SCHEMA)
    first = int(min(r["step"] for r in rows))
    path = metrics_part_path(sweep_dir, run_id, first)
    atomic_write_table(path, table)
    return path


def _is_part(f: Location) -> bool:
    return f.name.endswith(".parquet") and not f.name.startswith(".")


def _part_files(sweep_dir: PathLike, run_ids: Iterable[str] | None) -> list[Location]:
    """The parts of every run (one listing of the metrics folder) or of ``run_ids``."""
    root = as_location(sweep_dir) / METRICS_DIR
    if run_ids is None:
        return [f for f in root.files() if f.parent.name.startswith("run_id=") and f.parent.parent == root and _is_part(f)]
    return [f for r in run_ids for f in (root / f"run_id={r}").iterdir() if _is_part(f)]


def _read_part(path: Location) -> pa.Table:
    """One part, checked against PART_SCHEMA (pyarrow would fill a foreign file's missing
    columns with nulls, so the names are checked before the cast)."""
    table = pq.read_table(path.path, filesystem=path.fs)
    if "stage" not in table.column_names:  # written before stages existed: all stage 0
        table = table.append_column("stage", pa.array([0] * table.num_rows, pa.int64()))
    missing = [n for n in PART_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"not a grokgrid metrics part (no column {', '.join(missing)})")
    return table.select(PART_SCHEMA.names).cast(PART_SCHEMA)


@dataclass(frozen=True)
class Unreadable:
    """A file in the results folder that could not be read (torn, foreign, or no permission)."""

    path: Location
    problem: str
    run_id: str | None = None  # the run whose metrics part it is

    def describe(self) -> str:
        return f"{self.path}: {self.problem}"


def scan_metrics(sweep_dir: PathLike, run_ids: Iterable[str] | None = None) -> tuple[pd.DataFrame, list[Unreadable]]:
    """All readable metric rows of the sweep (or of ``run_ids``), sorted by (run_id, step) and
    deduplicated, and the parts that could not be read. Callers that must not compute anything
    from partial data (labels, the done check) look at the second list."""
    tables, unreadable = [], []
    for f in _part_files(sweep_dir, run_ids):
        run_id = f.parent.name.removeprefix("run_id=")
        try:
            t = _read_part(f)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, never fatal here
            unreadable.append(Unreadable(f, " ".join(str(exc).split()) or type(exc).__name__, run_id))
            continue
        tables.append(t.add_column(0, METRICS_SCHEMA.field("run_id"), pa.array([run_id] * t.num_rows, pa.string())))
    if not tables:
        return METRICS_SCHEMA.empty_table().to_pandas(), unreadable
    frame = pa.concat_tables(tables).to_pandas()
    # A resumed run may rewrite steps after its last checkpoint: the later part wins.
    frame = frame.drop_duplicates(subset=["run_id", "step"], keep="last")
    return frame.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True), unreadable


def read_metrics(sweep_dir: PathLike, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """All metric rows of the sweep (or of ``run_ids``), sorted by (run_id, step), deduplicated.

    A part that cannot be read, or whose schema is not ours, is skipped with a warning: one torn
    file must not hide every other run's results (``scan_metrics`` returns them instead).
    """
    frame, unreadable = scan_metrics(sweep_dir, run_ids)
    for bad in unreadable:
        warnings.warn(f"skipping unreadable metrics file {bad.path}: {bad.problem}", stacklevel=2)
    return frame


# A finished run's parts become one file of this compression (zstd: a quarter of snappy's size
# on these columns; every pyarrow reads it).
COMPACT_COMPRESSION = "zstd"


def compact_runs(sweep_dir: PathLike, run_ids: Iterable[str]) -> int:
    """Rewrite each finished run's parts as one part (its rows, deduplicated and in step order),
    so that a sweep of 10,000 runs is 10,000 metrics files, not one per flush; returns how many
    runs were compacted. The one part takes the name of the run's first part, replacing it
    atomically, and only then are the other parts deleted: a reader at any moment sees every row
    (between the two, some twice, which the readers' dedupe on (run_id, step) drops). A run
    with one part already, or with a part that cannot be read, is left as it is. Only for runs
    no trial writes any more (finished: their pack is done)."""
    wanted = set(run_ids)
    parts: dict[str, list[Location]] = {}
    for f in _part_files(sweep_dir, None):
        run_id = f.parent.name.removeprefix("run_id=")
        if run_id in wanted:
            parts.setdefault(run_id, []).append(f)
    compacted = 0
    for run_id, files in parts.items():
        if len(files) < 2:
            continue
        try:
            tables = [_read_part(f) for f in files]
        except Exception:  # noqa: BLE001 - a damaged part: the run is judged (and retrained) elsewhere
            continue
        order = sorted(range(len(files)), key=lambda i: part_first_step(files[i]) or 0)
        # Later parts win on a step written twice (a resumed run), as in scan_metrics.
        frame = pa.concat_tables([tables[i] for i in order]).to_pandas()
        frame = frame.drop_duplicates(subset=["step"], keep="last").sort_values("step", kind="stable")
        first = files[order[0]]
        table = _table(frame, PART_SCHEMA)
        first.write_with(lambda stream: pq.write_table(table, stream, compression=COMPACT_COMPRESSION, write_statistics=False),
                         durable=False)
        for i in order[1:]:
            files[i].unlink()
        compacted += 1
    return compacted


def remove_stale_temp_files(folder: PathLike) -> int:
    """Delete the hidden temp files (``.<name>.<random>.tmp``) that a writer killed mid-write
    left in ``folder``; returns how many. Only the folder's owner calls this (a pack's trial
    for its runs' folders), so no live writer's temp file is touched."""
    removed = 0
    for f in as_location(folder).iterdir():
        if f.name.startswith(".") and f.name.endswith(".tmp"):
            f.unlink()
            removed += 1
    return removed


def part_first_step(path: Location) -> int | None:
    """The first step of a metrics part, from its name (None for a name that is not ours)."""
    try:
        return int(path.name.removesuffix(".parquet").split("-", 1)[1])
    except (IndexError, ValueError):
        return None


def clear_metrics_from(sweep_dir: PathLike, run_id: str, first_step: int) -> None:
    """Delete a run's parts that start at or after ``first_step`` (used when a run restarts);
    from step 0, every part of the run, a torn or foreign one included."""
    for f in _part_files(sweep_dir, [run_id]):
        start = part_first_step(f)
        if first_step <= 0 or (start is not None and start >= first_step):
            f.unlink()


# ----------------------------------------------------------------------------- runs and labels


def write_runs(sweep_dir: PathLike, runs: pd.DataFrame) -> Location:
    """The runs table: run_id, pack_id, status and one column per hyperparameter."""
    path = as_location(sweep_dir) / RUNS_FILE
    atomic_write_table(path, pa.Table.from_pandas(runs.reset_index(drop=True), preserve_index=False))
    return path


class DamagedFile(ValueError):
    """A table of the results folder exists but cannot be read (torn, foreign, no permission)."""

    def __init__(self, path: Location, problem: str):
        self.path, self.problem = path, " ".join(problem.split())
        super().__init__(f"{path} is unreadable ({self.problem})")


RUNS_COLUMNS = ("run_id", "pack_id", "status")


def _read_table(path: Location, schema: pa.Schema | None = None) -> pd.DataFrame:
    try:
        return pq.read_table(path.path, filesystem=path.fs, schema=schema).to_pandas()
    except Exception as exc:  # noqa: BLE001 - torn, foreign or unreadable: one error type for callers
        raise DamagedFile(path, str(exc) or type(exc).__name__) from None


def read_runs(sweep_dir: PathLike) -> pd.DataFrame:
    """The runs table; FileNotFoundError when absent, DamagedFile when it cannot be read or
    lacks the columns every runs table has."""
    path = as_location(sweep_dir) / RUNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {sweep_dir} a grokgrid results folder?")
    table = _read_table(path)
    missing = [c for c in RUNS_COLUMNS if c not in table.columns]
    if missing:
        raise DamagedFile(path, f"no column {', '.join(missing)}: not a grokgrid runs table")
    return table


def write_labels(sweep_dir: PathLike, labels: pd.DataFrame, path: PathLike | None = None) -> Location:
    """The labels table, in the results folder or at ``path``."""
    path = as_location(sweep_dir) / LABELS_FILE if path is None else as_location(path)
    atomic_write_table(path, _table(labels, LABELS_SCHEMA))
    return path


def read_labels(sweep_dir: PathLike) -> pd.DataFrame:
    """The labels table; FileNotFoundError when absent, DamagedFile when it cannot be read."""
    path = as_location(sweep_dir) / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `grokgrid classify {sweep_dir}` first")
    return _read_table(path, LABELS_SCHEMA)
