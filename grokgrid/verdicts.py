"""Verdicts of a sweep's claims (its ``expect:`` section, expectations.py) on its labelled runs.

``verdicts`` is pure: it takes one table with a row per run (its hyperparameters, its labels from
phases.py and its metrics' final values) and, for ``leads`` claims, the per-step metrics, and
returns one :class:`Verdict` per claim: PASS or FAIL with the measured value beside the
expected one. A claim that cannot be measured (no run selected, too few points for a fit) is a
FAIL that says why: an untestable claim has not been reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from grokgrid import expectations as ex
from grokgrid import spec_fields

_TIMES = ("t_train", "t_val", "gap", "t_semi", "t_drop")


@dataclass(frozen=True)
class Verdict:
    claim: str
    kind: str
    passed: bool
    measured: str
    expected: str
    runs: int  # runs the claim was checked on
    source: str = ""

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.claim}: {self.measured} (expected {self.expected}; {self.runs} runs)"


def run_table(labels: pd.DataFrame, hyperparameters: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per labelled run: its hyperparameters, labels, and final_<metric> (the value at
    its last logged step) for every metric of expectations.METRICS."""
    last = metrics.sort_values(["run_id", "step"]).groupby("run_id", sort=False).tail(1).set_index("run_id")
    finals = pd.DataFrame({f"final_{m}": last[m] for m in ex.METRICS if m in last.columns})
    table = labels.merge(hyperparameters, on="run_id", how="left")
    finals = finals.drop(columns=[c for c in finals.columns if c in table.columns])
    return table.merge(finals, left_on="run_id", right_index=True, how="left")


def verdicts(claims: tuple[ex.Expectation, ...], table: pd.DataFrame, metrics: pd.DataFrame | None = None) -> list[Verdict]:
    return [_verdict(claim, select(table, claim.where), metrics) for claim in claims]


def select(table: pd.DataFrame, where) -> pd.DataFrame:
    """The rows of ``table`` (one per run, a column per axis) inside a claim's ``where``."""
    keep = np.ones(len(table), dtype=bool)
    for axis, allowed in where:
        if allowed.values and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in allowed.values):
            # A categorical axis: runs.parquet holds its values as shown (a layer list as text).
            keep &= table[axis].isin([spec_fields.shown(v) for v in allowed.values]).to_numpy()
            continue
        values = table[axis].to_numpy(dtype=float)
        if allowed.values:
            keep &= np.isclose(values[:, None], np.array(allowed.values)[None, :], rtol=1e-9, atol=1e-12).any(axis=1)
        else:
            keep &= (values >= allowed.low if allowed.low is not None else True) & (values <= allowed.high if allowed.high is not None else True)
    return table[keep]


def _verdict(claim: ex.Expectation, runs: pd.DataFrame, metrics: pd.DataFrame | None) -> Verdict:
    if runs.empty:
        passed, measured, expected = False, "no run matches 'where'", "runs to check"
    elif claim.kind == "speedup":
        passed, measured, expected = _speedup(claim.check, runs)
    elif claim.kind in ("leads", "reaches"):  # the checks that read the per-step metrics
        measure_steps = _leads if claim.kind == "leads" else _reaches
        passed, measured, expected = measure_steps(claim.check, runs, metrics)
    else:
        measure = {"phases": _phases, "share": _share, "trend": _trend, "fit": _fit}[claim.kind]
        passed, measured, expected = measure(claim.check, runs)
    return Verdict(claim.claim, claim.kind, bool(passed), measured, expected, len(runs), claim.source)


def _has(runs: pd.DataFrame, phases) -> pd.Series:
    """A run has a phase when it is its phase or its detail label (semi-grokking, ...)."""
    detail = runs["detail"] if "detail" in runs.columns else pd.Series(None, index=runs.index)
    return runs["phase"].isin(phases) | detail.isin(phases)


def _phases(c: ex.PhasesCheck, runs: pd.DataFrame):
    counts = {p: int(_has(runs, [p]).sum()) for p in (*c.present, *c.absent)}
    passed = all(counts[p] >= c.min_runs for p in c.present) and all(counts[p] == 0 for p in c.absent)
    measured = [f"{p} {n}" for p, n in counts.items()]
    wanted = [f"{', '.join(c.present)} >= {c.min_runs} run(s) each"] if c.present else []
    wanted += [f"no {', '.join(c.absent)}"] if c.absent else []
    if c.min_distinct is not None:
        seen = runs["phase"].value_counts()
        passed = passed and len(seen) >= c.min_distinct
        measured.append(f"{len(seen)} phases ({', '.join(f'{p} {n}' for p, n in seen.items())})")
        wanted.append(f">= {c.min_distinct} different phases")
    return passed, "; ".join(measured), "; ".join(wanted)


def _share(c: ex.ShareCheck, runs: pd.DataFrame):
    hits = int(_has(runs, c.phases).sum())
    share = hits / len(runs)
    passed = (c.at_least is None or share >= c.at_least) and (c.at_most is None or share <= c.at_most)
    return passed, f"{'/'.join(c.phases)} {hits}/{len(runs)} = {share:.2f}", f"share {_bounds(c.at_least, c.at_most)}"


def _bounds(low: float | None, high: float | None, name: str = "") -> str:
    parts = [f"{name}>= {low:g}" if low is not None else "", f"{name}<= {high:g}" if high is not None else ""]
    return " and ".join(p for p in parts if p)


def _quantity(runs: pd.DataFrame, name: str) -> np.ndarray:
    """A per-run quantity; a time never reached counts as later than any (inf)."""
    values = runs[name].to_numpy(dtype=float)
    return np.where(np.isnan(values), np.inf, values) if name in _TIMES else values


def _ranks(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(method="average").to_numpy()


def _trend(c: ex.TrendCheck, runs: pd.DataFrame):
    frame = pd.DataFrame({"x": runs[c.along].to_numpy(dtype=float), "y": _quantity(runs, c.quantity)}).dropna()
    medians = frame.groupby("x")["y"].median().sort_index()
    shown = ", ".join(f"{x:g}: {_short(y)}" for x, y in medians.items())
    want = f"{c.direction} along {c.along}, rank correlation {'>=' if c.direction == 'increasing' else '<='} " \
           f"{c.min_rank_correlation if c.direction == 'increasing' else -c.min_rank_correlation:g}"
    if len(medians) < 2:
        return False, f"median {c.quantity} at fewer than 2 values of {c.along} ({shown or 'none'})", want
    x, y = _ranks(medians.index.to_numpy()), _ranks(medians.to_numpy())
    rho = float(np.corrcoef(x, y)[0, 1]) if np.std(y) > 0 else 0.0
    signed = rho if c.direction == "increasing" else -rho
    passed = signed >= c.min_rank_correlation - 1e-9  # corrcoef of a perfect ranking can miss 1 by an ulp
    return passed, f"median {c.quantity} by {c.along} {{{shown}}}, rank correlation {rho:+.2f}", want


def _short(value: float) -> str:
    return "never" if np.isinf(value) else f"{value:.3g}"


def _fit(c: ex.FitCheck, runs: pd.DataFrame):
    variables = {name: _quantity(runs, name) for name in c.names()}
    x = np.asarray(ex.evaluate(c.x, variables), dtype=float) * np.ones(len(runs))
    y = np.asarray(ex.evaluate(c.y, variables), dtype=float) * np.ones(len(runs))
    ok = np.isfinite(x) & np.isfinite(y)
    slope_text = _bounds(c.slope_min, c.slope_max, "slope ")
    want = f"R^2 >= {c.min_r2:g}" + (f", {slope_text}" if slope_text else "")
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return False, f"{int(ok.sum())} run(s) with finite x and y (a time never reached is not finite), too few to fit", want
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    residual = y[ok] - (slope * x[ok] + intercept)
    spread = np.sum((y[ok] - y[ok].mean()) ** 2)
    r2 = 1 - np.sum(residual**2) / spread if spread > 0 else 0.0
    passed = r2 >= c.min_r2 and (c.slope_min is None or slope >= c.slope_min) and (c.slope_max is None or slope <= c.slope_max)
    return passed, f"{c.y} = {slope:.4g} * ({c.x}) + {intercept:.4g}, R^2 {r2:.3f} over {int(ok.sum())} runs", want


def _speedup(c: ex.SpeedupCheck, runs: pd.DataFrame):
    """median(over) / median(of) of a time. A run that never reached it counts at its last
    logged step, a lower bound of its time: censored ``over`` runs make the factor a lower bound
    (still a PASS when that bound clears the bar); a censored ``of`` run leaves it unknown."""
    want = f"{c.quantity} at least {c.at_least:g}x sooner (median over median)"
    groups = {}
    for key, selection in (("of", c.of), ("over", c.over)):
        chosen = select(runs, selection)
        if chosen.empty:
            return False, f"no run matches '{key}'", want
        times = chosen[c.quantity].to_numpy(dtype=float)
        never = np.isnan(times)
        if never.any():
            times = np.where(never, chosen["last_step"].to_numpy(dtype=float), times)
        groups[key] = (times, int(never.sum()), len(times))
    (of, of_never, of_n), (over, over_never, over_n) = groups["of"], groups["over"]
    shown = f"median {c.quantity} {_short(float(np.median(over)))}{'+' if over_never else ''} over {over_n} run(s) -> " \
            f"{_short(float(np.median(of)))} over {of_n}"
    if of_never:
        return False, f"{shown}; {of_never} of the faster group's runs never reached it: no factor", want
    factor = float(np.median(over) / np.median(of)) if np.median(of) > 0 else float("inf")
    bound = f" (a lower bound: {over_never} of {over_n} never reached it, counted at their last step)" if over_never else ""
    return factor >= c.at_least, f"{shown}: {'>= ' if over_never else ''}{factor:.3g}x{bound}", want


def _rows_with(metrics: pd.DataFrame | None, runs: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    """The selected runs' per-step rows, or None when they hold no value of ``metric``."""
    rows = metrics[metrics["run_id"].isin(runs["run_id"])] if metrics is not None else None
    return None if rows is None or rows.empty or rows[metric].isna().all() else rows


def _first_step(metrics: pd.DataFrame, metric: str, threshold: float) -> pd.Series:
    reached = metrics[metrics[metric] >= threshold]
    return reached.groupby("run_id")["step"].min()


def _first_moved(metrics: pd.DataFrame, metric: str, share: float) -> pd.Series:
    """Per run, the first logged step at which ``metric`` has made ``share`` of its change from
    its first logged value to its last, in the direction it went (falling or rising); a run
    whose metric ends where it started never moves."""
    steps = {}
    for run_id, rows in metrics.dropna(subset=[metric]).sort_values("step").groupby("run_id"):
        values = rows[metric].to_numpy(dtype=float)
        change = values[-1] - values[0]
        if change == 0:
            continue
        target = values[0] + share * change
        moved = values >= target if change > 0 else values <= target
        steps[run_id] = int(rows["step"].to_numpy()[np.argmax(moved)])
    return pd.Series(steps, dtype=float)


def _leads(c: ex.LeadsCheck, runs: pd.DataFrame, metrics: pd.DataFrame | None):
    moment = f"has made {c.moved:.0%} of its change" if c.moved is not None else f"reaches {c.threshold:g}"
    want = f"{c.metric} {moment} no later than {c.ahead_of} reaches {c.threshold:g} in >= {c.min_share:.0%} of those runs"
    rows = _rows_with(metrics, runs, c.metric)
    if rows is None:
        return False, f"no {c.metric} values (the metric does not apply to this task or model)", want
    ahead = _first_step(rows, c.ahead_of, c.threshold)
    leading = _first_moved(rows, c.metric, c.moved) if c.moved is not None else _first_step(rows, c.metric, c.threshold)
    leader = leading.reindex(ahead.index)
    if ahead.empty:
        return False, f"{c.ahead_of} never reaches {c.threshold:g}: nothing to lead", want
    lead = (ahead - leader).to_numpy(dtype=float)  # NaN: the metric never reached it
    share = float(np.mean(lead >= 0))
    median = np.nanmedian(lead) if np.isfinite(lead).any() else float("nan")
    measured = f"lead >= 0 in {int(np.sum(lead >= 0))}/{len(lead)} runs ({share:.0%}); median lead {median:g} steps"
    return share >= c.min_share, measured, want


def _reaches(c: ex.ReachesCheck, runs: pd.DataFrame, metrics: pd.DataFrame | None):
    relation, value = ("<", c.below) if c.below is not None else (">", c.above)
    want = f"{c.metric} {relation} {value:g} by step {c.by_step} in >= {c.min_share:.0%} of the runs"
    rows = _rows_with(metrics, runs, c.metric)
    if rows is None:
        return False, f"no {c.metric} values (the metric does not apply to this task or model)", want
    crossed = rows[rows[c.metric] < value] if c.below is not None else rows[rows[c.metric] > value]
    first = crossed.groupby("run_id")["step"].min().reindex(runs["run_id"])  # NaN: never crossed
    in_time = first <= c.by_step
    shown = ", ".join("never" if np.isnan(s) else str(int(s)) for s in sorted(first.to_numpy(dtype=float), key=lambda v: (np.isnan(v), v)))
    measured = f"first logged step {relation} {value:g}: {shown}; by step {c.by_step} in {int(in_time.sum())}/{len(first)} runs"
    return float(in_time.mean()) >= c.min_share, measured, want
