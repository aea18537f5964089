"""Fuzz and abuse: bad input and damaged files through the real CLI.

The conventions checked everywhere: bad input is one line on stderr starting with ``error: ``
that names the field or option and the fix, exit code 2, no traceback, and nothing written (no
results folder created, existing files byte-identical). A damaged results folder is reported,
never a crash. Nothing here starts Ray: every command fails or finishes before Ray would start
(an autouse fixture makes ``driver.connect`` fail the test at once if one did not), results
folders are built without Ray, and the one test that joins a cluster joins an address where
nothing answers.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from grokgrid import driver, store
from grokgrid.cli import app
from grokgrid.spec import parse_yaml, spec_from_dict
from results_folders import SMALL, make_results, write_spec

runner = CliRunner()

TINY = {
    "name": "tiny",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 120, "eval_every": 20},
    "resources": {"flush_every": 50, "pack_size": 2},
    "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2]},
    "phases": {"gap": 40},
}

FAST = settings(max_examples=25, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_ray(request, monkeypatch):
    """Ray must never start here: a command that got as far as connecting fails the test at
    once (instead of training). A test that means to reach the connect asks for allow_connect."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if "allow_connect" in request.fixturenames:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("the command got as far as starting/joining Ray")

    monkeypatch.setattr(driver, "connect", refuse)


@pytest.fixture
def allow_connect():
    """Marks a test whose command may reach driver.connect (it runs in a subprocess anyway)."""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_error(code: int, stdout: str, stderr: str, needles, exit_code: int = 2) -> str:
    shown = f"exit {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert code == exit_code, shown
    assert "Traceback" not in stdout + stderr, shown
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("error: "), shown
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def one_error(result, *needles) -> str:
    """The CliRunner result is exit 2 with exactly one 'error: ' line on stderr holding needles."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return _one_error(result.exit_code, result.stdout, result.stderr, needles)


def proc_error(proc: subprocess.CompletedProcess, *needles) -> str:
    return _one_error(proc.returncode, proc.stdout, proc.stderr, needles)


def flat(text: str) -> str:
    """Rich wraps long lines at the console width: compare with whitespace collapsed."""
    return " ".join(text.split())


def snapshot(root: Path) -> dict[str, bytes | None] | None:
    """Every path under root with its bytes (None for a folder); None when root is absent."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def metric_parts(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet"))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a parquet file\n"}[how])


DAMAGE = ["truncated", "empty", "garbage"]


# ----------------------------------------------------------------------------- 1. bad specs

BAD_SPEC_TEXTS = [
    pytest.param("name: a\nname: b\n", "error: name: given twice (lines 1 and 2)", id="duplicate-top-level"),
    pytest.param("name: dup\ntraining:\n  steps: 40\n  eval_every: 10\n  steps: 50\n",
                 "error: training.steps: given twice (lines 3 and 5)", id="duplicate-nested"),
    pytest.param("name: dup\ntraining:\n  early_stop:\n    patience: 3\n    patience: 4\n",
                 "error: training.early_stop.patience: given twice", id="duplicate-deeply-nested"),
    pytest.param("name: dup\ngrid: {repr_lr: [1e-3], repr_lr: [1e-2]}\n",
                 "error: grid.repr_lr: given twice", id="duplicate-in-flow-mapping"),
    pytest.param("name: dup\ntraining:\n  steps: 40\ntraining:\n  steps: 50\n",
                 "error: training: given twice (lines 2 and 4)", id="duplicate-section"),
    pytest.param("name: e\ntraining: {steps: 40, eval_every: 50}\n",
                 "error: training.eval_every: eval_every 50 exceeds training.steps 40", id="eval-every-over-steps"),
    pytest.param("name: u\ntrainig: {steps: 40}\n", "error: trainig: unknown key; valid keys are", id="unknown-top-key"),
    pytest.param("name: u\nmodel: {hiden: [16]}\n", "error: model.hiden: unknown key; valid keys are", id="unknown-nested-key"),
    pytest.param("name: u\nresources: {cpus_per_trail: 1}\n", "error: resources.cpus_per_trail: unknown key", id="unknown-resources-key"),
    pytest.param("name: c\nresources: {cpus_per_trial: 0}\n", "error: resources.cpus_per_trial: must be > 0", id="cpus-zero"),
    pytest.param("name: c\nresources: {cpus_per_trial: -2}\n", "error: resources.cpus_per_trial: must be > 0", id="cpus-negative"),
    pytest.param("name: c\nresources: {cpus_per_trial: -0.0}\n", "error: resources.cpus_per_trial: must be > 0", id="cpus-minus-zero"),
    pytest.param("name: c\nresources: {cpus_per_trial: .nan}\n", "error: resources.cpus_per_trial: must be finite", id="cpus-nan"),
    pytest.param("name: c\nresources: {cpus_per_trial: .inf}\n", "error: resources.cpus_per_trial: must be finite", id="cpus-inf"),
    pytest.param("", "error: name: missing", id="empty-file"),
    pytest.param("- 1\n- 2\n", "error: spec: expected a mapping", id="a-list"),
    pytest.param("name: [unclosed\n", "error: {spec}: not valid YAML", id="broken-yaml"),
    pytest.param("[" * 3000 + "]" * 3000 + "\n", "error: {spec}: ", id="deeply-nested-yaml"),
]


@pytest.mark.parametrize("text, start", BAD_SPEC_TEXTS)
def test_a_bad_spec_is_one_line_exit_2_and_writes_nothing(tmp_path, text, start):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    results = tmp_path / "results"
    line = one_error(invoke("sweep", spec, "--results", results))
    assert line.startswith(start.format(spec=spec)), line
    assert "; " in line, f"no fix named: {line}"
    assert not results.exists()


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_bytes(b"name: \xff\xfe\x00\x01 binary\n")
    line = one_error(invoke("sweep", spec, "--results", tmp_path / "results"), str(spec))
    assert "UTF-8" in line or "utf-8" in line
    assert not (tmp_path / "results").exists()


SECTION_KEYS = [
    ("training", "steps"), ("training", "eval_every"), ("training", "optimizer"), ("model", "hidden"),
    ("model", "activation"), ("grid", "repr_lr"), ("grid", "seed"), ("phases", "gap"), ("phases", "threshold"),
    ("resources", "cpus_per_trial"), ("resources", "pack_size"), ("task", "p"),
]


def test_any_key_given_twice_names_its_dotted_field_and_lines(tmp_path):
    results = tmp_path / "results"

    @FAST
    @given(st.sampled_from(SECTION_KEYS), st.integers(0, 3), st.sampled_from(["1", "x", "[1, 2]", "{a: 1}"]))
    def check(where, blank_lines, value):
        section, key = where
        gap = "\n" * blank_lines
        text = f"name: dup\n{section}:\n  {key}: {value}\n{gap}  {key}: {value}\n"
        spec = tmp_path / "dup.yaml"
        spec.write_text(text)
        line = one_error(invoke("sweep", spec, "--results", results))
        assert line.startswith(f"error: {section}.{key}: given twice (lines 3 and {4 + blank_lines}); keep one"), line
        assert not results.exists()

    check()


def test_a_folder_given_as_spec(tmp_path):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    write_spec(sweeps, TINY, "quickstart.yaml")
    results = tmp_path / "results"
    line = one_error(invoke("sweep", sweeps, "--results", results), str(sweeps), "is a folder, not a spec file")
    assert "quickstart.yaml" in line  # the fix names a spec it holds
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error(invoke("sweep", empty, "--results", results), "is a folder, not a spec file", "give the path of a sweep YAML")
    assert not results.exists()


@pytest.mark.parametrize("name", ["nope.yaml", "missing/dir/spec.yaml", "tiny.yaml/inside.yaml"])
def test_a_missing_spec_file(tmp_path, name):
    write_spec(tmp_path, TINY, "tiny.yaml")  # tiny.yaml/inside.yaml: a file used as a folder
    results = tmp_path / "results"
    one_error(invoke("sweep", tmp_path / name, "--results", results), "no such file", "give the path of a sweep YAML")
    assert not results.exists()


# ----------------------------------------------------------------------------- bad option values


@pytest.mark.parametrize("option", ["--cpus-per-trial", "--gpus-per-trial"])
def test_random_bad_per_trial_resources_are_one_line(tmp_path, option):
    spec = write_spec(tmp_path, TINY)
    results = tmp_path / "results"
    bad = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False) if option == "--cpus-per-trial" else \
        st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False)

    @FAST
    @given(bad)
    def check(value):
        # --dry-run: were a bad value let through, nothing would start anyway.
        line = one_error(invoke("sweep", spec, "--results", results, f"{option}={value!r}", "--dry-run"), f"error: {option}: must be")
        assert "give e.g." in line
        assert not results.exists()

    check()


@pytest.mark.parametrize("option, value", [
    ("--cpus-per-trial", "nan"), ("--cpus-per-trial", "inf"), ("--cpus-per-trial", "-inf"),
    ("--gpus-per-trial", "nan"), ("--gpus-per-trial", "inf"), ("--gpus-per-trial", "-inf"),
])
def test_non_finite_per_trial_resources_are_refused_like_the_spec_does(tmp_path, option, value):
    # The spec refuses a non-finite resources.cpus_per_trial / gpus_per_trial; the command line
    # that overrides them must too (an infinite pack never gets a slot).
    spec = write_spec(tmp_path, TINY)
    results = tmp_path / "results"
    one_error(invoke("sweep", spec, "--results", results, f"{option}={value}", "--dry-run"), f"error: {option}: ")
    assert not results.exists()


@pytest.mark.parametrize("args, option", [
    (["--num-cpus", "0"], "--num-cpus"),
    (["--num-cpus", "lots"], "--num-cpus"),
    (["--pack-size", "0"], "--pack-size"),
    (["--pack-size", "1.5"], "--pack-size"),
    (["--connect-timeout", "0"], "--connect-timeout"),
    (["--cpus-per-trial", "one"], "--cpus-per-trial"),
])
def test_option_type_errors_exit_2_without_traceback_and_write_nothing(tmp_path, args, option):
    # Click's own usage errors: exit 2 naming the option, no traceback, nothing written. (Their
    # format is Click's "Usage: ... Error: Invalid value for '--x'", not checked as one line.)
    spec = write_spec(tmp_path, TINY)
    results = tmp_path / "results"
    result = invoke("sweep", spec, "--results", results, *args, "--dry-run")
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.output
    assert not results.exists()


# ----------------------------------------------------------------------------- 2. --dry-run


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, TINY)
    results = tmp_path / "results"
    result = invoke("sweep", spec, "--results", results, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert any(line.startswith("plan: ") for line in lines), result.stdout
    text = flat(result.stdout)
    plan_text = text[text.index("plan: "):]
    assert plan_text.startswith("plan: 4 runs, "), plan_text
    assert "480 run-steps" in plan_text and ("roughly" in plan_text or "not estimated" in plan_text), plan_text
    assert lines[-1] == "dry run: nothing started, nothing written"
    assert not results.exists()
    assert result.stderr == ""


def test_dry_run_says_when_toy_splits_cap_val_accuracy(tmp_path):
    # At 28 of 55 pairs seeds 0 and 1 determine 74% and 81% of their validation pairs.
    capped = write_spec(tmp_path, {**TINY, "grid": {**TINY["grid"], "train_fraction": [0.5], "seed": [0, 1]}})
    text = flat(invoke("sweep", capped, "--results", tmp_path / "results", "--dry-run").stdout)
    assert "note: 2 of the 2 (training fraction, seed) splits determine fewer than 90%" in text, text
    assert "task.split: determined" in text
    fine = write_spec(tmp_path, TINY, "fine.yaml")  # 44 of 55 pairs, seed 0: 91% determined
    assert "note:" not in invoke("sweep", fine, "--results", tmp_path / "results", "--dry-run").stdout


def test_dry_run_imports_no_ray_and_creates_no_results_folder(tmp_path):
    spec = write_spec(tmp_path, TINY)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from grokgrid.cli import app\n"
        "r = CliRunner().invoke(app, sys.argv[1:])\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
        "assert r.exit_code == 0, r.exit_code\n"
        "ray = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not ray, ray[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "sweep", str(spec), "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dry run: nothing started, nothing written" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no results/ under the default --results

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grokgrid", "sweep", str(spec), "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "dry run: nothing started, nothing written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
    assert elapsed < 15, f"a dry run took {elapsed:.1f} s: as long as starting Ray"


def test_dry_run_on_an_existing_folder_counts_what_is_left_and_changes_nothing(tmp_path):
    spec_path, sweep_dir = make_results(tmp_path, done=1)
    changed = write_spec(tmp_path, {**SMALL, "phases": {"gap": 5}}, "changed.yaml")
    before = snapshot(sweep_dir)
    for spec in (spec_path, changed):
        result = invoke("sweep", spec, "--results", tmp_path / "results", "--dry-run")
        assert result.exit_code == 0, result.output
        text = flat(result.stdout)
        assert "plan: 1 runs (of 2)" in text and "it already holds this sweep" in text, text
        assert text.endswith("dry run: nothing started, nothing written")
    assert snapshot(sweep_dir) == before  # a dry run does not record the new phases either


# ----------------------------------------------------------------------------- 3. the size guard


def _big(axes: tuple[int, ...]) -> dict:
    names = ("repr_lr", "decoder_lr", "seed")
    values = {"repr_lr": {"logspace": [1e-5, 1e-1, axes[0]]}, "decoder_lr": {"logspace": [1e-5, 1e-1, axes[1]]}}
    if len(axes) > 2:
        values["seed"] = list(range(axes[2]))
    return {**TINY, "name": "big", "grid": {n: values[n] for n in names if n in values}}


@pytest.mark.parametrize("axes, runs", [((100, 100), "10,000"), ((100, 100, 100), "1,000,000")])
def test_a_very_large_grid_needs_yes_without_a_terminal(tmp_path, axes, runs):
    spec = write_spec(tmp_path, _big(axes))
    results = tmp_path / "results"
    started = time.monotonic()
    result = invoke("sweep", spec, "--results", results)
    elapsed = time.monotonic() - started
    one_error(result, "--yes", "--dry-run", f"{runs} runs")
    assert not results.exists()
    assert elapsed < 30, f"the size guard took {elapsed:.1f} s for {runs} runs"

    dry = invoke("sweep", spec, "--results", results, "--dry-run")
    assert dry.exit_code == 0, dry.output
    text = flat(dry.stdout)
    assert f"plan: {runs} runs" in text
    assert "asks for confirmation (or --yes)" in text and text.endswith("dry run: nothing started, nothing written")
    assert not results.exists()


def test_a_huge_typo_in_a_logspace_answers_quickly(tmp_path):
    # num: 10,000,000 where 10 was meant. It must answer at once, naming the field, not after
    # validating ten million values (a subprocess, so that a slow answer can be cut off).
    spec = write_spec(tmp_path, {**TINY, "name": "typo", "grid": {"repr_lr": {"logspace": [1e-5, 1e-1, 10_000_000]}}})
    started = time.monotonic()
    try:
        proc = subprocess.run(
            # --address where nothing answers: were the guard passed, the sweep fails fast, no Ray.
            [sys.executable, "-m", "grokgrid", "sweep", str(spec), "--results", str(tmp_path / "results"),
             "--address", "127.0.0.1:1", "--connect-timeout", "1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`grokgrid sweep` of a 10^7-value logspace did not answer within 30 s")
    elapsed = time.monotonic() - started
    proc_error(proc, "grid.repr_lr.logspace[2]", "at most 100,000")
    assert elapsed < 30
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- 4. spec changes


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("change, report", [
    ({"phases": {"gap": 5, "threshold": 0.8}}, False),
    ({"description": "second look, same runs"}, False),
    ({"phases": {"gap": 7, "semi_min": 0.3}, "description": "relabelled"}, True),
    ({"resources": {"pack_size": 2, "flush_every": 7}}, False),
])
def test_a_spec_differing_only_in_phases_or_description_is_not_refused(tmp_path, change, report):
    _, sweep_dir = make_results(tmp_path)
    new = {**SMALL, **change}
    spec_path = write_spec(tmp_path, new, "new.yaml")
    metrics_before = _files(sweep_dir / store.METRICS_DIR)
    args = ["sweep", spec_path, "--results", tmp_path / "results"] + ([] if report else ["--no-report"])
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "--overwrite" not in result.output
    assert "nothing left to run" in flat(result.stdout)
    frozen = spec_from_dict(parse_yaml((sweep_dir / store.SPEC_FILE).read_text()))
    assert frozen == spec_from_dict(new)  # the new phases / description are recorded
    assert _files(sweep_dir / store.METRICS_DIR) == metrics_before
    assert set(store.read_runs(sweep_dir)["status"]) == {"done"}
    if report:
        assert (sweep_dir / store.LABELS_FILE).is_file() and (sweep_dir / store.REPORT_FILE).is_file()
    else:
        assert not (sweep_dir / store.LABELS_FILE).exists() and not (sweep_dir / store.REPORT_FILE).exists()


@pytest.mark.parametrize("change, field", [
    ({"training": {"steps": 50, "eval_every": 10}}, "training.steps"),
    ({"training": {"steps": 40, "eval_every": 20}}, "training.eval_every"),
    ({"grid": {"repr_lr": [1e-3, 1e-2]}}, "grid.repr_lr"),
    ({"model": {"hidden": [16, 32]}}, "model.hidden"),
])
def test_a_spec_differing_in_training_is_refused_and_nothing_changes(tmp_path, change, field):
    _, sweep_dir = make_results(tmp_path)
    spec_path = write_spec(tmp_path, {**SMALL, **change}, "new.yaml")
    before = snapshot(sweep_dir)
    line = one_error(invoke("sweep", spec_path, "--results", tmp_path / "results"), field, "--overwrite")
    assert "different spec" in line
    assert snapshot(sweep_dir) == before


# ----------------------------------------------------------------------------- 5. damaged files


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_runs_table(tmp_path, how):
    _, sweep_dir = make_results(tmp_path, done=1)
    assert invoke("classify", sweep_dir).exit_code == 0  # labels, so that report gets as far as the runs
    damage(sweep_dir / store.RUNS_FILE, how)
    before = snapshot(sweep_dir)

    status = invoke("status", sweep_dir)
    assert status.exit_code == 0, status.output
    assert "Traceback" not in status.output
    warnings_ = [line for line in status.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings_) == 1 and store.RUNS_FILE in warnings_[0], status.stderr
    assert "2 runs: 1 done, 1 started, 0 pending, 0 failed" in flat(status.stdout)  # from the metrics

    report = invoke("report", sweep_dir)
    one_error(report, store.RUNS_FILE, f"grokgrid resume {sweep_dir}")
    assert snapshot(sweep_dir) == before


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_labels_table(tmp_path, how):
    _, sweep_dir = make_results(tmp_path)
    assert invoke("classify", sweep_dir).exit_code == 0
    damage(sweep_dir / store.LABELS_FILE, how)
    before = snapshot(sweep_dir)
    one_error(invoke("report", sweep_dir), store.LABELS_FILE, f"grokgrid classify {sweep_dir}")
    assert snapshot(sweep_dir) == before and not (sweep_dir / store.REPORT_FILE).exists()


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_metrics_part(tmp_path, how):
    _, sweep_dir = make_results(tmp_path)
    part = metric_parts(sweep_dir)[0]
    run_id = part.parent.name.removeprefix("run_id=")
    damage(part, how)
    before = snapshot(sweep_dir)

    line = one_error(invoke("classify", sweep_dir), f"grokgrid resume {sweep_dir}")
    assert run_id in line or part.name in line, line
    assert not (sweep_dir / store.LABELS_FILE).exists()

    status = invoke("status", sweep_dir)
    assert status.exit_code == 0, status.output
    text = flat(status.stdout)
    assert "1 damaged" in text and f"damaged: run {run_id}" in text, text
    assert snapshot(sweep_dir) == before


GARBAGE_SPECS = {
    "binary": b"\xff\xfe\x00\x01\x02 garbage \x80\x81",
    "broken-yaml": b"name: [unclosed\n  : : :\n",
    "a-list": b"- 1\n- 2\n",
    "a-number": b"42\n",
    "empty": b"",
    "unknown-key": b"name: small\nbogus: 1\n",
    "duplicate-key": b"name: small\nname: small\n",
    "deeply-nested": b"[" * 3000 + b"]" * 3000 + b"\n",
}


@pytest.mark.parametrize("kind", list(GARBAGE_SPECS))
def test_a_garbage_frozen_spec(tmp_path, kind):
    spec_path, sweep_dir = make_results(tmp_path)
    assert invoke("classify", sweep_dir).exit_code == 0
    (sweep_dir / store.SPEC_FILE).write_bytes(GARBAGE_SPECS[kind])
    before = snapshot(sweep_dir)
    for args in (("status", sweep_dir), ("classify", sweep_dir), ("report", sweep_dir), ("resume", sweep_dir),
                 ("sweep", spec_path, "--results", tmp_path / "results")):
        one_error(invoke(*args), store.SPEC_FILE)
    assert snapshot(sweep_dir) == before


# ----------------------------------------------------------------------------- 6. read-only folder

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def _root_without_permission_override() -> None:
    """Still uid 0 (the interpreter may live under /root), but without the capabilities that let
    root ignore file permissions: dropped from the bounding set, so the exec'd child lacks them."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _unprivileged(probe_dir: Path):
    """A preexec_fn under which a child cannot write into a read-only folder (None when this
    process is not root), or a skip saying why none could be found."""
    if os.geteuid() != 0:
        return None
    tried = []
    for name, preexec in (("setuid to nobody", _as_nobody), ("dropping CAP_DAC_OVERRIDE", _root_without_permission_override)):
        try:
            proc = subprocess.run(
                [sys.executable, "-c", "import sys, grokgrid.cli; open(sys.argv[1], 'w')", str(probe_dir / "probe")],
                preexec_fn=preexec, capture_output=True, text=True, timeout=60, cwd="/",
            )
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{name}: {exc}")
            continue
        if proc.returncode != 0 and "PermissionError" in proc.stderr:
            return preexec
        tried.append(f"{name}: the child " + ("could write" if proc.returncode == 0 else f"failed otherwise: {proc.stderr.strip()[-200:]}"))
    pytest.skip("running as root and no way to run the CLI without root's file-permission override: " + "; ".join(tried))


def _chmod_tree(root: Path, dirs: int, files: int) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(dirs if p.is_dir() else files)


@pytest.fixture
def open_tmp():
    """A folder under /tmp that an unprivileged user can traverse (pytest's tmp_path under
    /tmp/pytest-of-root may not be)."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="grokgrid-abuse-"))
    base.chmod(0o755)
    yield base
    for p in [base, *base.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(stat.S_IRWXU | p.stat().st_mode)
    shutil.rmtree(base, ignore_errors=True)


def test_a_read_only_results_folder(open_tmp):
    _, sweep_dir = make_results(open_tmp)
    assert invoke("classify", sweep_dir).exit_code == 0
    assert invoke("report", sweep_dir).exit_code == 0
    out = open_tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    _chmod_tree(sweep_dir, 0o555, 0o444)
    before = snapshot(sweep_dir)
    probe = open_tmp / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    preexec = _unprivileged(probe)

    def grokgrid(*args):
        return subprocess.run([sys.executable, "-m", "grokgrid", *map(str, args)], preexec_fn=preexec, cwd=out,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(out)})

    status = grokgrid("status", sweep_dir)  # only reads
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    for command in ("classify", "report"):
        proc_error(grokgrid(command, sweep_dir), "--out", "cannot write")
    assert snapshot(sweep_dir) == before

    labels, html = out / "labels.parquet", out / "report.html"
    done = grokgrid("classify", sweep_dir, "--out", labels)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(labels)) == 2
    done = grokgrid("report", sweep_dir, "--out", html)
    assert done.returncode == 0, done.stderr
    assert "Phase diagram" in html.read_text()
    assert snapshot(sweep_dir) == before


# ----------------------------------------------------------------------------- 7. report options


def test_report_axes_and_facet_of_single_valued_hyperparameters(tmp_path):
    _, sweep_dir = make_results(tmp_path)
    assert invoke("classify", sweep_dir).exit_code == 0
    assert invoke("report", sweep_dir).exit_code == 0
    before = snapshot(sweep_dir)
    line = one_error(invoke("report", sweep_dir, "--axes", "repr_wd,seed"), "repr_wd", "seed")
    assert line.startswith("error: --axes: "), line
    assert "repr_lr" in line  # the fix: the hyperparameters that vary
    line = one_error(invoke("report", sweep_dir, "--facet", "decoder_lr"), "decoder_lr")
    assert line.startswith("error: --facet: "), line
    assert snapshot(sweep_dir) == before


def test_random_axes_and_facets_are_one_line_and_keep_the_report(tmp_path):
    # Only repr_lr varies in this folder: every --axes value (two names needed) and every
    # --facet value (repr_lr is already the default axis) is an error.
    _, sweep_dir = make_results(tmp_path)
    assert invoke("classify", sweep_dir).exit_code == 0
    assert invoke("report", sweep_dir).exit_code == 0
    before = snapshot(sweep_dir)
    names = st.sampled_from(["repr_lr", "decoder_lr", "repr_wd", "seed", "bogus", "", " ", "repr_lr "])
    text = st.one_of(st.text(max_size=30), st.lists(names, min_size=1, max_size=3).map(",".join))

    @FAST
    @given(st.sampled_from(["--axes", "--facet"]), text)
    def check(option, value):
        result = invoke("report", sweep_dir, f"{option}={value}")
        line = one_error(result)
        assert line.startswith(f"error: {option}"), line

    check()
    assert snapshot(sweep_dir) == before


# ----------------------------------------------------------------------------- 8. help


@pytest.mark.parametrize("command, argument", [
    ("sweep", "SPEC"), ("resume", "RESULTS"), ("status", "RESULTS"), ("classify", "RESULTS"), ("report", "RESULTS"),
])
def test_help_is_plain(command, argument):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "<bool>" not in text
    usage = [line for line in text.splitlines() if line.startswith("Usage:")]
    assert usage == [f"Usage: grokgrid {command} [OPTIONS] {argument}"], usage
    assert "{" not in usage[0]
    assert "--storage,--results" not in text
    if command == "sweep":
        assert "--storage, --results" in text


def test_top_level_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0 and "<bool>" not in result.stdout
    for command in ("sweep", "resume", "status", "classify", "report"):
        assert command in result.stdout
    assert invoke("--version").stdout.startswith("grokgrid ")


# ----------------------------------------------------------------------------- 9. not a sweep folder

READERS = ["resume", "status", "classify", "report"]


@pytest.mark.parametrize("command", READERS)
def test_readers_on_a_missing_folder(tmp_path, command):
    missing = tmp_path / "absent" / "sweep"
    one_error(invoke(command, missing), "no such folder", "results/")
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("kind", ["empty", "with-files", "a-file", "metrics-only"])
def test_readers_on_a_folder_that_is_not_a_sweep(tmp_path, command, kind):
    target = tmp_path / "plain"
    if kind == "a-file":
        target.write_text("just a file\n")
    else:
        target.mkdir()
        if kind == "with-files":
            (target / "notes.txt").write_text("hello\n")
            (target / "sub").mkdir()
        if kind == "metrics-only":  # a results folder that lost its spec
            (target / store.METRICS_DIR).mkdir()
            (target / store.RUNS_FILE).write_bytes(b"PAR1")
    before = snapshot(tmp_path)
    one_error(invoke(command, target))
    assert snapshot(tmp_path) == before


def test_sweep_into_a_foreign_folder_or_a_file_is_refused(tmp_path):
    spec = write_spec(tmp_path, TINY)
    foreign = tmp_path / "results" / "tiny"
    foreign.mkdir(parents=True)
    (foreign / "thesis.tex").write_text("\\documentclass{article}\n")
    before = snapshot(tmp_path / "results")
    one_error(invoke("sweep", spec, "--results", tmp_path / "results"), "not a grokgrid results folder")
    one_error(invoke("sweep", spec, "--results", tmp_path / "results", "--overwrite"), "not a grokgrid results folder")
    assert snapshot(tmp_path / "results") == before

    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    one_error(invoke("sweep", spec, "--results", afile), str(afile))
    assert afile.read_text() == "not a folder\n"


# ----------------------------------------------------------------------------- 10. unreachable cluster


def test_an_address_where_nothing_answers(tmp_path, allow_connect):
    spec = write_spec(tmp_path, TINY)
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "grokgrid", "sweep", str(spec), "--results", str(results),
         "--address", "127.0.0.1:1", "--connect-timeout", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    proc_error(proc, "--address 127.0.0.1:1")
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert not (results / "tiny").exists(), "the sweep's results folder was left behind"
    assert not results.exists(), f"the --results folder {results} it created was left behind (empty)"
