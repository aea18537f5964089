"""The runs of a sweep gathered into the cells of the phase diagram: each run's label joined on,
the runs sorted, and per (facet, x, y) cell its majority phase and detail label, grokking delay
and final val accuracy (``phase_grid``); plus the runs per phase and detail label that the
summary lists (counted by phases.phase_counts / phases.detail_counts).

Pandas and numpy only; vectorised over runs, since a sweep may hold 10,000 of them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from grokgrid.phases import DETAILS, PHASE_COLORS, PHASES, detail_counts, phase_counts
from grokgrid.report.axes import hyperparameter_columns, resolve_axes, resolve_facet

# Runs with no label yet (pending, failed, not classified) still occupy their cell.
UNLABELED = "unlabeled"
# The one value on an axis with nothing to plot (1-D strip, single cell, no facet).
SINGLE_CELL = "all"
FALLBACK_COLOR = "#BBBBBB"


def labelled_runs(runs: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The runs table with the label columns joined on; runs without a label are 'unlabeled', and
    a missing detail (no label, or a labels file older than the column) is ""."""
    label_columns = [c for c in labels.columns if c != "run_id" and c not in runs.columns]
    table = runs.merge(labels[["run_id", *label_columns]], on="run_id", how="left")
    table["phase"] = table["phase"].astype(object).where(table["phase"].notna(), UNLABELED)
    detail = table["detail"] if "detail" in table.columns else pd.Series("", index=table.index)
    table["detail"] = detail.astype(object).where(detail.notna(), "")
    return table


def _phase_rank(phase: str) -> int:
    # Ties and orderings follow PHASES; phases we do not know come after, unlabeled last.
    if phase in PHASES:
        return PHASES.index(phase)
    return len(PHASES) + (1 if phase == UNLABELED else 0)


def ordered_phases(phases: Sequence[str]) -> list[str]:
    return sorted(set(phases), key=lambda p: (_phase_rank(p), p))


def phase_color(phase: str) -> str:
    return PHASE_COLORS.get(phase, FALLBACK_COLOR)


def numeric_column(table: pd.DataFrame, column: str) -> np.ndarray:
    """A label column as float64 (NaN for missing: no such column, NA, None)."""
    if column not in table.columns:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def identity_columns(runs: pd.DataFrame, fixed: Sequence[str | None]) -> list[str]:
    """Hyperparameters that tell the runs of one cell apart (vary, and are not axes or facet)."""
    return [h for h in hyperparameter_columns(runs) if h not in fixed and runs[h].nunique(dropna=True) > 1]


def sorted_table(runs: pd.DataFrame, labels: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    table = labelled_runs(runs, labels)
    # Facet, axes, then the other hyperparameters (seed last), then run_id: a stable order in
    # which a cell's runs read naturally (hover, cell table) and a grid walk is spread out.
    by = [k for k in dict.fromkeys([*keys, *hyperparameter_columns(table), "run_id"]) if k in table.columns]
    return table.sort_values(by, kind="stable").reset_index(drop=True)


GRID_COLUMNS = (
    "x", "y", "phase", "n_runs", "n_majority", "run_ids",
    "facet", "detail", "n_detail", "delay", "n_delay", "val_acc",
)  # fmt: skip


def _majority(cell: np.ndarray, names: np.ndarray, n_cells: int, skip: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the most common name (ties: PHASES order, then alphabetical) and its count."""
    frame = pd.DataFrame({"cell": cell, "name": names})
    if skip is not None:
        frame = frame[frame["name"] != skip]
    best = np.full(n_cells, "" if skip is not None else UNLABELED, dtype=object)
    count = np.zeros(n_cells, dtype=np.int64)
    if frame.empty:
        return best, count
    sizes = frame.groupby(["cell", "name"], sort=False).size().rename("n").reset_index()
    sizes["rank"] = sizes["name"].map(_phase_rank)
    sizes = sizes.sort_values(["cell", "n", "rank", "name"], ascending=[True, False, True, True], kind="stable")
    first = sizes.drop_duplicates("cell")
    best[first["cell"].to_numpy()] = first["name"].to_numpy()
    count[first["cell"].to_numpy()] = first["n"].to_numpy()
    return best, count


def cell_grid(table: pd.DataFrame, axes: tuple[str | None, str | None], facet: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The cells of a labelled (sorted) table and each run's cell number (vectorised over runs)."""
    x_name, y_name = axes
    keys = pd.DataFrame(
        {
            # A missing axis collapses to one category so that 1-D and 0-D sweeps are still grids
            # (not "": plotly treats an empty category as missing data).
            "facet": table[facet] if facet else SINGLE_CELL,
            "x": table[x_name] if x_name else SINGLE_CELL,
            "y": table[y_name] if y_name else SINGLE_CELL,
        },
        index=table.index,
    )
    if table.empty:
        return pd.DataFrame(columns=list(GRID_COLUMNS)), np.zeros(0, dtype=np.int64)
    groups = keys.groupby(["facet", "x", "y"], sort=True, dropna=False)
    cell = groups.ngroup().to_numpy(dtype=np.int64)
    n_cells = int(cell.max()) + 1
    first = keys.groupby(cell, sort=True).first()

    phase, n_majority = _majority(cell, table["phase"].to_numpy(dtype=object), n_cells)
    detail, n_detail = _majority(cell, table["detail"].to_numpy(dtype=object), n_cells, skip="")

    # Grokking delay: median t_val - t_train over the runs that generalised (grokking or
    # comprehension; a diverged run's timings stop at its divergence).
    gap = numeric_column(table, "gap")
    generalised = np.isin(table["phase"].to_numpy(dtype=object), ["grokking", "comprehension"]) & np.isfinite(gap)
    delays = pd.Series(gap[generalised]).groupby(cell[generalised])
    delay = delays.median().reindex(range(n_cells)).to_numpy(dtype=np.float64)
    n_delay = delays.size().reindex(range(n_cells), fill_value=0).to_numpy(dtype=np.int64)
    val_acc = pd.Series(numeric_column(table, "final_val_acc")).groupby(cell).mean().reindex(range(n_cells)).to_numpy()

    run_ids = table["run_id"].groupby(cell, sort=True).agg(tuple).reindex(range(n_cells))
    grid = pd.DataFrame(
        {
            "x": first["x"].to_numpy(dtype=object),
            "y": first["y"].to_numpy(dtype=object),
            "phase": phase,
            "n_runs": np.bincount(cell, minlength=n_cells),
            "n_majority": n_majority,
            "run_ids": run_ids.to_numpy(dtype=object),
            "facet": first["facet"].to_numpy(dtype=object),
            "detail": detail,
            "n_detail": n_detail,
            "delay": delay,
            "n_delay": n_delay,
            "val_acc": val_acc,
        },
        columns=list(GRID_COLUMNS),
    )
    return grid, cell


def phase_grid(
    runs: pd.DataFrame,
    labels: pd.DataFrame,
    axes: Sequence[str | None] | None = None,
    facet: str | None = None,
) -> pd.DataFrame:
    """One row per (facet, x, y) cell, sorted by facet, x, y:

    x, y         the cell's axis values (SINGLE_CELL where there is no axis)
    phase        the majority phase of its runs (seeds, and every hyperparameter off the axes
                 and facet); ties go to the phase listed first in PHASES
    n_runs, n_majority, run_ids (tuple)
    facet        the facet value (SINGLE_CELL without a facet)
    detail, n_detail   the most common detail label ("" if none) and how many runs carry it
    delay, n_delay     median t_val - t_train over the runs that generalised (grokking or
                       comprehension; NaN if none) and how many those are
    val_acc      mean final val accuracy (NaN if none logged)
    """
    axes = resolve_axes(runs, axes)
    facet = resolve_facet(runs, facet, axes)
    table = sorted_table(runs, labels, [facet, *axes] if facet else list(axes))
    return cell_grid(table, axes, facet)[0]


def summary_counts(runs: pd.DataFrame, labels: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Runs per phase and per detail label, as the summary lists them.

    Counted by phases.phase_counts and phases.detail_counts (every phase and detail label, zeros
    included), then one entry per phase that phases.py does not know (runs without a label:
    'unlabeled'; a label from another grokgrid version), so that the phases add up to the runs.
    """
    table = labelled_runs(runs, labels)
    known = table["phase"].isin(PHASES)
    per_phase = phase_counts(table.loc[known, "phase"])
    others = table.loc[~known, "phase"].value_counts()
    for phase in ordered_phases(others.index.tolist()):
        per_phase[phase] = int(others[phase])
    # phases.detail_counts refuses names it does not know; the summary only lists DETAILS.
    per_detail = detail_counts(table.loc[table["detail"].isin(DETAILS), "detail"])
    return per_phase, per_detail
