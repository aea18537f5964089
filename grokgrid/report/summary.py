"""The summary section of the report: runs per phase (the detail labels under the phase they
refine), run status, the hyperparameters (fixed, swept or replicates, with their values) and the
meta items (sweep, date, version; the spec in a collapsed block). Table rows built from the data;
every text is escaped."""

from __future__ import annotations

import html
from typing import Mapping

import pandas as pd

from grokgrid.phases import DETAIL_PHASE
from grokgrid.report.axes import display_name, format_value, hyperparameter_columns, sorted_unique
from grokgrid.report.cells import phase_color, summary_counts


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{html.escape(color)}"></span>'


def _phase_count_rows(counts: Mapping[str, int], details: Mapping[str, int] | None = None) -> list[str]:
    """One row per phase; a detail label's row (when any run has it) goes under its phase."""
    rows = []
    for phase, n in counts.items():
        rows.append(f'<tr><td>{_swatch(phase_color(phase))}{html.escape(phase)}</td><td class="num">{n}</td></tr>')
        for detail, m in (details or {}).items():
            if m and DETAIL_PHASE.get(detail) == phase:
                rows.append(
                    f'<tr class="sub"><td>of which {html.escape(detail)}</td><td class="num" '
                    f'data-detail="{html.escape(detail)}">{m}</td></tr>'
                )
    return rows


def _status_text(runs: pd.DataFrame) -> str:
    if "status" not in runs.columns:
        return ""
    counts = runs["status"].value_counts()
    return ", ".join(f"{int(n)} {html.escape(str(s))}" for s, n in counts.items())


def _hyperparameter_rows(runs: pd.DataFrame) -> list[str]:
    rows = []
    for name in hyperparameter_columns(runs):
        values = sorted_unique(runs[name].dropna())
        kind = "fixed" if len(values) == 1 else ("replicates" if name == "seed" else "swept")
        shown = values if len(values) <= 12 else [*values[:5], "…", *values[-5:]]
        text = ", ".join(format_value(v, 4) if v != "…" else v for v in shown)
        rows.append(
            f"<tr><td>{html.escape(display_name(name))} <span class='note'>({html.escape(name)}, {kind})</span>"
            f"</td><td>{html.escape(text)}</td></tr>"
        )
    return rows


def _meta_block(meta: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """One table row per short item; multi-line items (the spec) go in a collapsed <pre> block."""
    rows, blocks = [], []
    for key, value in meta.items():
        text = "" if value is None else str(value)
        if "\n" in text or len(text) > 120:
            blocks.append(
                f"<details><summary>{html.escape(str(key))}</summary><pre>{html.escape(text)}</pre></details>"
            )
        else:
            rows.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(text)}</td></tr>")
    return rows, blocks


def summary_html(runs: pd.DataFrame, labels: pd.DataFrame, meta: Mapping[str, object] | None = None) -> str:
    """The summary section: runs per phase (all PHASES, zeros too) with the detail labels under
    their phase, run count and status, the hyperparameters, and the ``meta`` items, all escaped."""
    counts, details = summary_counts(runs, labels)
    meta_rows, meta_blocks = _meta_block(meta or {})
    status = _status_text(runs)
    counts_table = [
        '<table class="summary" id="phase-counts"><thead><tr><th>phase</th><th>runs</th></tr></thead><tbody>',
        *_phase_count_rows(counts, details),
        f'<tr><th>total</th><td class="num" id="n-runs">{len(runs)}</td></tr>',
        "</tbody></table>",
    ]
    if status:
        counts_table.append(f'<p class="note">run status: {status}</p>')
    parts = ['<div class="row"><div>', *counts_table, "</div><div>"]
    parts += ['<table class="summary" id="hyperparameters"><tbody>', *_hyperparameter_rows(runs), "</tbody></table>"]
    if meta_rows:
        parts += ['<table class="summary" id="meta"><tbody>', *meta_rows, "</tbody></table>"]
    parts += ["</div></div>", *meta_blocks]
    return "\n".join(parts)
