"""The summary section of the report: runs per phase (the detail labels under the phase they
refine), run status, the hyperparameters (fixed, swept or replicates, with their values) and the
meta items (sweep, date, version; the spec in a collapsed block). The HTML is assets/summary.html's
snippets, filled from the data; every text is escaped."""

from __future__ import annotations

import html
from typing import Iterable, Mapping, Sequence

import pandas as pd

from grokgrid.phases import DETAIL_PHASE
from grokgrid.report.axes import display_name, format_value, hyperparameter_columns, sorted_unique
from grokgrid.report.cells import phase_color, summary_counts
from grokgrid.report.templates import snippets

_SNIPPETS = snippets("summary.html")


def _lines(pieces: Iterable[str]) -> str:
    """Pieces for a snippet's optional or repeated slot, each on a line of its own."""
    return "".join(f"\n{piece}" for piece in pieces)


def _phase_count_rows(counts: Mapping[str, int], details: Mapping[str, int] | None = None) -> list[str]:
    """One row per phase; a detail label's row (when any run has it) goes under its phase."""
    rows = []
    for phase, n in counts.items():
        rows.append(_SNIPPETS["phase_row"].substitute(color=html.escape(phase_color(phase)), phase=html.escape(phase), count=n))
        for detail, m in (details or {}).items():
            if m and DETAIL_PHASE.get(detail) == phase:
                rows.append(_SNIPPETS["detail_row"].substitute(detail=html.escape(detail), count=m))
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
        rows.append(_SNIPPETS["hyperparameter_row"].substitute(
            display=html.escape(display_name(name)), name=html.escape(name), kind=kind, values=html.escape(text)))
    return rows


def _meta_block(meta: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """One table row per short item; multi-line items (the spec) go in a collapsed <pre> block."""
    rows, blocks = [], []
    for key, value in meta.items():
        text = "" if value is None else str(value)
        long = "\n" in text or len(text) > 120
        snippet = _SNIPPETS["meta_block" if long else "meta_row"]
        (blocks if long else rows).append(snippet.substitute(key=html.escape(str(key)), value=html.escape(text)))
    return rows, blocks


def summary_html(runs: pd.DataFrame, labels: pd.DataFrame, meta: Mapping[str, object] | None = None) -> str:
    """The summary section: runs per phase (all PHASES, zeros too) with the detail labels under
    their phase, run count and status, the hyperparameters, and the ``meta`` items, all escaped."""
    counts, details = summary_counts(runs, labels)
    meta_rows, meta_blocks = _meta_block(meta or {})
    status = _status_text(runs)
    return _SNIPPETS["section"].substitute(
        phase_rows=_lines(_phase_count_rows(counts, details)),
        n_runs=len(runs),
        status=_lines([_SNIPPETS["status"].substitute(status=status)] if status else []),
        hyperparameter_rows=_lines(_hyperparameter_rows(runs)),
        meta_table=_lines([_SNIPPETS["meta_table"].substitute(rows=_lines(meta_rows))] if meta_rows else []),
        meta_blocks=_lines(meta_blocks),
    )


def claims_html(verdicts: Sequence | None, unfinished: int = 0) -> str:
    """The Claims section: one row per verdict of the spec's claims (verdicts.Verdict: claim,
    source, passed, measured, expected, runs); empty when the spec states none."""
    if not verdicts:
        return ""
    rows = [
        _SNIPPETS["claim_row"].substitute(
            verdict="pass" if v.passed else "fail", verdict_text="PASS" if v.passed else "FAIL",
            claim=html.escape(v.claim),
            source=_SNIPPETS["claim_source"].substitute(source=html.escape(v.source)) if v.source else "",
            measured=html.escape(v.measured), expected=html.escape(v.expected), runs=v.runs,
        )
        for v in verdicts
    ]
    provisional = f" {unfinished} run(s) are unfinished: the verdicts are provisional." if unfinished else ""
    return _SNIPPETS["claims"].substitute(passed=sum(v.passed for v in verdicts), total=len(verdicts),
                                          provisional=html.escape(provisional), rows=_lines(rows))
