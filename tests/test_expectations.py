"""The ``expect:`` section (expectations.py) and its verdicts (verdicts.py): parsing with one-line
errors, round trips through spec.yaml, and verdicts on hand-made run tables that PASS when the
claim holds and FAIL when the runs contradict it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grokgrid import expectations as ex
from grokgrid import store, verdicts
from grokgrid.spec import HYPERPARAMETERS, SpecError, dump_spec, parse_yaml, spec_from_dict

BASE = {"name": "claims", "grid": {"decoder_wd": [0.0, 0.1, 1.0], "seed": [0, 1]}}

CLAIMS = [
    {"claim": "all four phases appear", "source": "Liu et al. 2022", "phases": {"present": ["comprehension", "grokking", "memorization", "confusion"]}},
    {"claim": "wd 0 does not grok", "where": {"decoder_wd": 0}, "share": {"phases": ["grokking", "comprehension"], "at_most": 0}},
    {"claim": "more wd generalizes earlier", "where": {"decoder_wd": {"min": 0.1}},
     "trend": {"quantity": "t_val", "along": "decoder_wd", "direction": "decreasing", "min_rank_correlation": 1}},
    {"claim": "grokking time ~ log(alpha) / wd", "fit": {"x": "log(init_scale) / decoder_wd", "y": "t_val * decoder_lr", "min_r2": 0.9, "slope": {"min": 0}}},
    {"claim": "commutativity first", "leads": {"metric": "commutativity_acc", "ahead_of": "val_acc"}},
]


def spec_with(*claims):
    return spec_from_dict({**BASE, "expect": list(claims)})


def test_claims_parse_and_round_trip_through_the_frozen_spec():
    spec = spec_with(*CLAIMS)
    assert [c.kind for c in spec.expect] == ["phases", "share", "trend", "fit", "leads"]
    assert spec.expect[0].source == "Liu et al. 2022" and spec.expect[1].where[0][1].values == (0.0,)
    text = dump_spec(spec)
    assert spec_from_dict(parse_yaml(text)) == spec
    assert dump_spec(spec_from_dict(parse_yaml(text))) == text


def test_a_spec_without_claims_dumps_as_before_and_claims_never_change_run_ids():
    from grokgrid import grid

    plain, claimed = spec_from_dict(BASE), spec_with(*CLAIMS)
    assert "expect" not in dump_spec(plain)
    assert [r.run_id for r in grid.expand(plain)] == [r.run_id for r in grid.expand(claimed)]


def test_the_metric_names_are_the_stores():
    assert set(ex.METRICS) == set(store.METRIC_COLUMNS) - {"run_id", "step", "stage", "elapsed_s"}


@pytest.mark.parametrize(
    "claim, field, words",
    [
        ({"claim": "x"}, "expect[0]", "needs exactly one check, found none"),
        ({"claim": "x", "phases": {"present": ["grokking"]}, "share": {"phases": ["grokking"], "at_least": 1}}, "expect[0]", "found 2"),
        ({"phases": {"present": ["grokking"]}}, "expect[0].claim", "missing"),
        ({"claim": "x", "phases": {"present": ["grokked"]}}, "expect[0].phases.present[0]", "unknown value 'grokked'"),
        ({"claim": "x", "phases": {}}, "expect[0].phases", "names no phase"),
        ({"claim": "x", "share": {"phases": ["grokking"]}}, "expect[0].share", "no bound"),
        ({"claim": "x", "share": {"phases": ["grokking"], "at_least": 1.5}}, "expect[0].share.at_least", "[0, 1]"),
        ({"claim": "x", "where": {"decoder_wd": 0.5}, "phases": {"present": ["grokking"]}}, "expect[0].where.decoder_wd", "not a value of grid.decoder_wd"),
        ({"claim": "x", "where": {"decoder_wd": {"min": 5}}, "phases": {"present": ["grokking"]}}, "expect[0].where.decoder_wd", "holds no value"),
        ({"claim": "x", "where": {"lr": 1}, "phases": {"present": ["grokking"]}}, "expect[0].where.lr", "unknown key"),
        ({"claim": "x", "trend": {"quantity": "t_val", "along": "repr_lr", "direction": "decreasing"}}, "expect[0].trend.along", "one value"),
        ({"claim": "x", "trend": {"quantity": "speed", "along": "decoder_wd", "direction": "decreasing"}}, "expect[0].trend.quantity", "unknown value"),
        ({"claim": "x", "trend": {"quantity": "t_val", "along": "decoder_wd", "direction": "up"}}, "expect[0].trend.direction", "unknown value"),
        ({"claim": "x", "fit": {"x": "log(alpha)", "y": "t_val", "min_r2": 0.9}}, "expect[0].fit.x", "unknown name 'alpha'"),
        ({"claim": "x", "fit": {"x": "__import__('os')", "y": "t_val", "min_r2": 0.9}}, "expect[0].fit.x", "a call other than"),
        ({"claim": "x", "fit": {"x": "t_val.real", "y": "t_val", "min_r2": 0.9}}, "expect[0].fit.x", "not allowed"),
        ({"claim": "x", "fit": {"x": "decoder_wd", "y": "t_val"}}, "expect[0].fit.min_r2", "missing"),
        ({"claim": "x", "leads": {"metric": "val_acc"}}, "expect[0].leads.ahead_of", "missing"),
        ({"claim": "x", "leads": {"metric": "rqi", "ahead_of": "val_acc", "lead": 3}}, "expect[0].leads.lead", "unknown key"),
        ({"claim": "x", "leads": {"metric": "perturbed_entropy", "ahead_of": "val_acc", "moved": 0}}, "expect[0].leads.moved", "(0, 1]"),
        ({"claim": "x", "leads": {"metric": "perturbed_entropy", "ahead_of": "val_acc", "moved": 1.5}}, "expect[0].leads.moved", "(0, 1]"),
        ({"claim": "x", "speedup": {"of": {"decoder_wd": 1}, "over": {"decoder_wd": 0}}}, "expect[0].speedup.at_least", "missing"),
        ({"claim": "x", "speedup": {"of": {"decoder_wd": 1}, "over": {"decoder_wd": 1}, "at_least": 2}}, "expect[0].speedup.over", "same runs"),
        ({"claim": "x", "speedup": {"of": {}, "over": {"decoder_wd": 0}, "at_least": 2}}, "expect[0].speedup.of", "selects every run"),
        ({"claim": "x", "speedup": {"of": {"decoder_wd": 2}, "over": {"decoder_wd": 0}, "at_least": 2}}, "expect[0].speedup.of.decoder_wd", "not a value"),
        ({"claim": "x", "speedup": {"quantity": "final_val_acc", "of": {"decoder_wd": 1}, "over": {"decoder_wd": 0}, "at_least": 2}},
         "expect[0].speedup.quantity", "unknown value"),
        ({"claim": "x", "speedup": {"of": {"decoder_wd": 1}, "over": {"decoder_wd": 0}, "at_least": 0}}, "expect[0].speedup.at_least", "> 0"),
    ],
)
def test_bad_claims_are_one_line_errors_naming_the_field(claim, field, words):
    with pytest.raises(SpecError) as caught:
        spec_with(claim)
    message = str(caught.value)
    assert message.startswith(f"{field}:") and words in message and "\n" not in message, message


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from([*ex.CHECKS, "claim", "where", "x", "present", "phases"]), inner, max_size=3),
                    max_leaves=8))
def test_any_expect_value_is_accepted_or_a_one_line_spec_error(raw):
    try:
        spec = spec_from_dict({**BASE, "expect": raw})
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("expect")
    else:
        assert spec_from_dict(parse_yaml(dump_spec(spec))) == spec


# ----------------------------------------------------------------------------- verdicts


def runs_table(rows) -> pd.DataFrame:
    """Runs as (decoder_wd, init_scale, phase, t_val) with decoder_lr 1e-3 and t_train 100."""
    frame = pd.DataFrame(rows, columns=["decoder_wd", "init_scale", "phase", "t_val"])
    frame.insert(0, "run_id", [f"r{i}" for i in range(len(frame))])
    return frame.assign(decoder_lr=1e-3, t_train=100, detail=None, final_val_acc=np.where(frame["t_val"].notna(), 1.0, 0.1))


def check(claim, table, metrics=None) -> verdicts.Verdict:
    (verdict,) = verdicts.verdicts(spec_with(claim).expect, table, metrics)
    return verdict


GOOD = runs_table([(0.0, 1, "memorization", None), (0.0, 1, "confusion", None), (0.1, 1, "grokking", 3000),
                   (0.1, 1, "grokking", 2600), (1.0, 1, "comprehension", 400), (1.0, 1, "grokking", 1500)])


def test_phases_and_share_pass_when_the_runs_show_them_and_fail_when_not():
    assert check(CLAIMS[0], GOOD).passed
    only_memorized = GOOD.assign(phase="memorization")
    verdict = check(CLAIMS[0], only_memorized)
    assert not verdict.passed and "grokking 0" in verdict.measured
    assert check(CLAIMS[1], GOOD).passed
    grokked_at_zero = GOOD.assign(phase="grokking")
    verdict = check(CLAIMS[1], grokked_at_zero)
    assert not verdict.passed and "2/2 = 1.00" in verdict.measured and verdict.runs == 2
    absent = {"claim": "no divergence", "phases": {"absent": ["diverged"]}}
    assert check(absent, GOOD).passed and not check(absent, GOOD.assign(phase="diverged")).passed


def test_min_distinct_counts_the_different_phases():
    claim = {"claim": "three phases, grokking among them", "phases": {"present": ["grokking"], "min_distinct": 3}}
    verdict = check(claim, GOOD)
    assert verdict.passed and "4 phases" in verdict.measured
    two = GOOD.assign(phase=["memorization", "memorization", "grokking", "grokking", "grokking", "memorization"])
    verdict = check(claim, two)
    assert not verdict.passed and "2 phases (" in verdict.measured
    with pytest.raises(SpecError, match=r"^expect\[0\]\.phases\.min_distinct: must be 2 to 5"):
        spec_with({"claim": "x", "phases": {"min_distinct": 7}})


def test_a_detail_label_counts_as_having_that_phase():
    claim = {"claim": "semi-grokking appears", "phases": {"present": ["semi-grokking"]}}
    assert not check(claim, GOOD).passed
    assert check(claim, GOOD.assign(detail=["semi-grokking"] + [None] * 5)).passed


def test_a_trend_passes_only_in_its_direction_and_never_reached_is_latest():
    assert check(CLAIMS[2], GOOD).passed  # medians 2800 at wd 0.1, 950 at wd 1
    reversed_ = GOOD.assign(t_val=[None, None, 400, 500, 3000, 2600])
    verdict = check(CLAIMS[2], reversed_)
    assert not verdict.passed and "rank correlation +1.00" in verdict.measured
    whole = {"claim": "x", "trend": {"quantity": "t_val", "along": "decoder_wd", "direction": "decreasing"}}
    verdict = check(whole, GOOD)  # wd 0 never generalizes: "never" is the latest of all
    assert verdict.passed and "0: never" in verdict.measured


SPEEDUP = {"claim": "wd 1 groks 2x sooner than wd 0.1", "speedup": {"of": {"decoder_wd": 1}, "over": {"decoder_wd": 0.1}, "at_least": 2}}


def test_a_speedup_compares_medians_and_round_trips():
    spec = spec_with(SPEEDUP)
    assert spec_from_dict(parse_yaml(dump_spec(spec))) == spec
    verdict = check(SPEEDUP, GOOD)  # medians 2800 over 950
    assert verdict.passed and verdict.measured == "median t_val 2.8e+03 over 2 run(s) -> 950 over 2: 2.95x"
    slower = GOOD.assign(t_val=[None, None, 3000, 2600, 1400, 1500])
    verdict = check(SPEEDUP, slower)
    assert not verdict.passed and verdict.measured.endswith(": 1.93x")


def test_a_speedup_over_runs_that_never_got_there_is_a_lower_bound():
    table = GOOD.assign(last_step=4000)
    never = {"claim": "x", "speedup": {"of": {"decoder_wd": 1}, "over": {"decoder_wd": 0}, "at_least": 4}}
    verdict = check(never, table)  # wd 0 never generalizes in 4,000 steps: >= 4000 / 950
    assert verdict.passed and ">= 4.21x (a lower bound: 2 of 2 never reached it" in verdict.measured
    verdict = check({**never, "speedup": {**never["speedup"], "at_least": 5}}, table)
    assert not verdict.passed and ">= 4.21x" in verdict.measured  # the budget cannot show a 5x factor
    backwards = {"claim": "x", "speedup": {"of": {"decoder_wd": 0}, "over": {"decoder_wd": 1}, "at_least": 1}}
    verdict = check(backwards, table)
    assert not verdict.passed and "never reached it: no factor" in verdict.measured


def test_a_fit_reports_slope_and_r2_and_fails_on_scatter_or_too_few_points():
    alphas = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    wds = [0.1, 1.0, 0.1, 1.0, 0.1, 1.0]
    law = [int(1e3 * (1 + math.log(a) / w)) for a, w in zip(alphas, wds)]  # t_val * lr = 1 + log(alpha) / wd
    table = runs_table([(w, a, "grokking", t) for w, a, t in zip(wds, alphas, law)])
    spec = spec_from_dict({"name": "fit", "grid": {"decoder_wd": [0.1, 1.0], "init_scale": alphas}, "expect": [CLAIMS[3]]})
    (verdict,) = verdicts.verdicts(spec.expect, table)
    assert verdict.passed and "R^2 1.000" in verdict.measured and "= 1 * (" in verdict.measured
    scattered = table.assign(t_val=[5000, 100, 2000, 9000, 300, 4000])
    (verdict,) = verdicts.verdicts(spec.expect, scattered)
    assert not verdict.passed
    (verdict,) = verdicts.verdicts(spec.expect, table.assign(t_val=[None, None, None, None, 1000, 2000]))
    assert not verdict.passed and "too few to fit" in verdict.measured


def test_leads_compares_first_steps_per_run():
    steps = np.arange(0, 1000, 100)
    rows = []
    for run, (comm_at, val_at) in {"r2": (300, 500), "r3": (200, 200)}.items():
        for s in steps:
            rows.append({"run_id": run, "step": s, "commutativity_acc": float(s >= comm_at), "val_acc": float(s >= val_at)})
    metrics = pd.DataFrame(rows)
    table = GOOD[GOOD["run_id"].isin(["r2", "r3"])]
    verdict = check(CLAIMS[4], table, metrics)
    assert verdict.passed and "2/2" in verdict.measured and "median lead 100 steps" in verdict.measured
    late = metrics.assign(commutativity_acc=np.where(metrics["step"] >= 800, 1.0, 0.0))
    assert not check(CLAIMS[4], table, late).passed
    verdict = check(CLAIMS[4], table, metrics.assign(commutativity_acc=np.nan))
    assert not verdict.passed and "does not apply" in verdict.measured


def test_leads_with_moved_times_a_metric_by_its_own_change_in_either_direction():
    claim = {"claim": "entropy first", "leads": {"metric": "perturbed_entropy", "moved": 0.5, "ahead_of": "val_acc", "threshold": 0.9}}
    steps = np.arange(0, 1000, 100)

    def frame(falls_at: dict[str, int], val_at: dict[str, int], sign: float = -1.0) -> pd.DataFrame:
        # The entropy steps from 3 to 3 + 2 * sign at falls_at (its half-way moment); val jumps at val_at.
        return pd.DataFrame([{"run_id": run, "step": s, "perturbed_entropy": 3.0 + sign * 2.0 * (s >= falls_at[run]),
                              "val_acc": float(s >= val_at[run])} for run in falls_at for s in steps])

    table = GOOD[GOOD["run_id"].isin(["r2", "r3"])]
    ahead = frame({"r2": 300, "r3": 500}, {"r2": 500, "r3": 500})
    verdict = check(claim, table, ahead)
    assert verdict.passed and "2/2" in verdict.measured and "median lead 100 steps" in verdict.measured
    assert "has made 50% of its change" in verdict.expected
    assert check(claim, table, frame({"r2": 300, "r3": 500}, {"r2": 500, "r3": 500}, sign=1.0)).passed  # rising works too
    behind = frame({"r2": 300, "r3": 700}, {"r2": 500, "r3": 500})
    verdict = check(claim, table, behind)
    assert not verdict.passed and "1/2" in verdict.measured
    flat = ahead.assign(perturbed_entropy=3.0)  # no change: the metric never moves, no lead
    assert not check(claim, table, flat).passed
    # Without moved, the threshold reads an entropy of 3 as having "reached 0.9" at step 0: a lead
    # that says nothing. That is why the metric's own change times it.
    trivial = check({**claim, "leads": {k: v for k, v in claim["leads"].items() if k != "moved"}}, table, ahead)
    assert "median lead 500 steps" in trivial.measured


def test_reaches_checks_the_first_step_a_metric_crosses_a_value():
    claim = {"claim": "val loss below 0.01 by step 500", "reaches": {"metric": "val_loss", "below": 0.01, "by_step": 500}}
    steps = np.arange(0, 1000, 100)
    metrics = pd.DataFrame([{"run_id": run, "step": s, "val_loss": 1.0 / (1 + s * rate)} for run, rate in (("r2", 1.0), ("r3", 0.5)) for s in steps])
    table = GOOD[GOOD["run_id"].isin(["r2", "r3"])]
    verdict = check(claim, table, metrics)  # r2 crosses at 100 (1/101), r3 at 200 (1/101)
    assert verdict.passed and "first logged step < 0.01: 100, 200; by step 500 in 2/2 runs" in verdict.measured
    late = {**claim, "reaches": {**claim["reaches"], "by_step": 150}}
    verdict = check(late, table, metrics)
    assert not verdict.passed and "in 1/2 runs" in verdict.measured
    assert check({**late, "reaches": {**late["reaches"], "min_share": 0.5}}, table, metrics).passed
    never = check(claim, table, metrics.assign(val_loss=1.0))
    assert not never.passed and "never, never" in never.measured
    acc = {"claim": "x", "reaches": {"metric": "val_acc", "above": 0.5, "by_step": 300}}
    assert check(acc, table, metrics.assign(val_acc=metrics["step"] / 500)).passed
    for bad, words in (({"metric": "val_loss", "by_step": 5}, "exactly one of below and above"),
                       ({"metric": "val_loss", "below": 1, "above": 0, "by_step": 5}, "exactly one of below and above"),
                       ({"metric": "val_loss", "below": 1}, "by_step: missing")):
        with pytest.raises(SpecError, match=words):
            spec_with({"claim": "x", "reaches": bad})
    spec = spec_with(claim)
    assert spec_from_dict(parse_yaml(dump_spec(spec))) == spec


def test_a_claim_whose_where_matches_no_labelled_run_fails_saying_so():
    verdict = check(CLAIMS[1], GOOD[GOOD["decoder_wd"] > 0])
    assert not verdict.passed and "no run matches" in verdict.measured


def test_run_table_joins_labels_hyperparameters_and_final_metrics():
    labels = pd.DataFrame({"run_id": ["a", "b"], "phase": ["grokking", "confusion"], "final_val_acc": [1.0, 0.2]})
    hyper = pd.DataFrame({"run_id": ["a", "b"], **{h: [0.1, 0.2] for h in HYPERPARAMETERS}})
    metrics = pd.DataFrame({"run_id": ["a", "a", "b"], "step": [0, 10, 0], "rqi": [0.1, 0.9, 0.3], "val_acc": [0.0, 1.0, 0.2]})
    table = verdicts.run_table(labels, hyper, metrics)
    assert table.set_index("run_id")["final_rqi"].to_dict() == {"a": 0.9, "b": 0.3}
    assert list(table["final_val_acc"]) == [1.0, 0.2] and list(table["decoder_wd"]) == [0.1, 0.2]


# ----------------------------------------------------------------------------- grokgrid verify


def test_verify_exits_0_when_every_claim_passes_1_when_one_fails_2_without_claims(tmp_path):
    from typer.testing import CliRunner

    from grokgrid.cli import app
    from results_folders import SMALL, make_results

    runner = CliRunner()
    for sub in "abcd":
        (tmp_path / sub).mkdir()
    # make_results's runs fit their train set and sit at val acc 0.5: memorization, every one.
    claims = [{"claim": "every run memorizes", "share": {"phases": ["memorization"], "at_least": 1}},
              {"claim": "some run groks", "source": "a paper", "phases": {"present": ["grokking"]}}]
    _, passing = make_results(tmp_path / "a", {**SMALL, "expect": claims[:1]})
    result = runner.invoke(app, ["verify", str(passing)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["PASS  every run memorizes: memorization 2/2 = 1.00 (expected share >= 1; 2 runs)",
                                          "claims: 1 passed, 0 failed"]
    _, failing = make_results(tmp_path / "b", {**SMALL, "expect": claims})
    result = runner.invoke(app, ["verify", str(failing)])
    assert result.exit_code == 1 and "FAIL  some run groks: grokking 0" in result.stdout and "claims: 1 passed, 1 failed" in result.stdout
    # the report shows the verdicts at its top
    assert runner.invoke(app, ["classify", str(failing)]).exit_code == 0
    assert runner.invoke(app, ["report", str(failing)]).exit_code == 0
    page = (failing / "report.html").read_text()
    section = page[page.index('<table class="summary" id="claims">'):page.index("<h2>Summary</h2>")]
    assert page.index("<h2>Claims</h2>") < page.index("<h2>Summary</h2>") and "1 of 2 pass" in page
    assert '<tr class="pass"><td class="verdict">PASS</td><td>every run memorizes</td>' in section
    assert '<tr class="fail"><td class="verdict">FAIL</td><td>some run groks<br><span class="note">a paper</span></td><td>grokking 0</td>' in section
    _, unclaimed = make_results(tmp_path / "c")
    result = runner.invoke(app, ["verify", str(unclaimed)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "states no claims" in result.stderr
    assert runner.invoke(app, ["classify", str(unclaimed)]).exit_code == 0
    assert runner.invoke(app, ["report", str(unclaimed)]).exit_code == 0
    assert "<h2>Claims</h2>" not in (unclaimed / "report.html").read_text()  # no claims, no section
    _, half = make_results(tmp_path / "d", {**SMALL, "expect": claims[:1]}, done=1)
    result = runner.invoke(app, ["verify", str(half)])
    assert "1 of 2 runs are unfinished: the verdicts are provisional" in result.stdout


@pytest.mark.slow
def test_a_sweep_with_claims_ends_with_their_verdicts(tmp_path, ray_local):
    import yaml
    from typer.testing import CliRunner

    from grokgrid.cli import app

    data = {"name": "claimed", "model": {"hidden": [16, 16]}, "training": {"steps": 40, "eval_every": 10},
            "grid": {"repr_lr": [1e-3, 1e-2]}, "resources": {"pack_size": 1},
            "expect": [{"claim": "no run diverges", "phases": {"absent": ["diverged"]}},
                       {"claim": "some run groks in 40 steps", "phases": {"present": ["grokking"]}}]}
    spec_path = tmp_path / "claimed.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["sweep", str(spec_path), "--storage", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output  # a failed claim is a finding, not a failed sweep
    assert "PASS  no run diverges: diverged 0" in result.stdout
    assert "FAIL  some run groks in 40 steps: grokking 0" in result.stdout and "claims: 1 passed, 1 failed" in result.stdout


def test_changing_the_claims_of_a_trained_sweep_never_asks_to_retrain():
    from grokgrid import folder

    before, after = spec_from_dict(BASE), spec_with(*CLAIMS)
    assert folder.spec_difference(before.to_dict(), after.to_dict()) == []
    changed_training = spec_from_dict({**BASE, "training": {"steps": 77}, "expect": CLAIMS})
    assert folder.spec_difference(before.to_dict(), changed_training.to_dict()) == ["training.steps"]
