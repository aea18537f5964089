"""Which runs are finished, judged from their rows (completion.py), and the sweep plan (plan.py)."""

from __future__ import annotations

import math
import subprocess
import sys
import signal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grokgrid import completion, grid, interrupts, plan
from grokgrid.schedule import logged_steps
from grokgrid.spec import spec_from_dict
from grokgrid.store import Unreadable
from grokgrid.location import as_location

SPEC = spec_from_dict({"name": "c", "training": {"steps": 100, "eval_every": 10}})
EARLY = spec_from_dict({"name": "c", "training": {"steps": 100, "eval_every": 10, "early_stop": {"threshold": 0.9, "patience": 3}}})


def rows(steps, train_acc=0.5, val_acc=0.1, loss=1.0, run_id="r"):
    return pd.DataFrame({"run_id": run_id, "step": list(steps), "train_loss": loss, "val_loss": loss,
                         "train_acc": train_acc, "val_acc": val_acc})


def test_a_run_is_finished_only_at_its_end():
    assert completion.assess_run(SPEC, "r", rows(range(0, 101, 10))).end == "complete"
    started = completion.assess_run(SPEC, "r", rows(range(0, 51, 10)))
    assert started.end is None and started.steps_done == 50 and started.state == "started"
    pending = completion.assess_run(SPEC, "r", rows([]))
    assert pending.state == "pending" and not pending.finished


def test_a_diverged_or_early_stopped_run_is_finished_where_the_trainer_drops_it():
    diverged = rows(range(0, 41, 10))
    diverged.loc[4, "train_loss"] = math.nan
    assert completion.assess_run(SPEC, "r", diverged).end == "diverged"
    decided = rows(range(0, 41, 10), train_acc=1.0, val_acc=1.0)
    assert completion.assess_run(EARLY, "r", decided).end == "early_stop"
    assert completion.assess_run(SPEC, "r", decided).end is None  # no early-stop rule: not finished
    short = rows(range(0, 41, 10), train_acc=1.0, val_acc=[0.1, 0.1, 1.0, 1.0, 0.5])
    assert completion.assess_run(EARLY, "r", short).end is None


def test_a_missing_step_or_an_unreadable_part_is_damage_not_an_end():
    holed = rows([0, 10, 30, 40, 50, 60, 70, 80, 90, 100])
    state = completion.assess_run(SPEC, "r", holed)
    assert state.state == "damaged" and "step 20" in state.damage and not state.finished
    bad = Unreadable(as_location("/x/metrics/run_id=r/part-000000000050.parquet"), "torn", "r")
    state = completion.assess_run(SPEC, "r", rows(range(0, 101, 10)), [bad])
    assert state.state == "damaged" and "unreadable" in state.damage
    assert completion.assess_run(SPEC, "other", rows([], run_id="other"), [bad]).state == "pending"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10), st.sets(st.integers(0, 10)))
def test_finished_exactly_when_every_logged_step_to_the_end_is_there(last, dropped):
    logged = logged_steps(SPEC)
    kept = [s for i, s in enumerate(logged[: last + 1]) if i not in dropped]
    state = completion.assess_run(SPEC, "r", rows(kept))
    whole = kept == logged[: len(kept)]
    assert state.finished == (whole and bool(kept) and kept[-1] == 100)
    assert (state.damage is not None) == (bool(kept) and not whole)


def test_a_checkpoint_is_usable_only_where_every_row_up_to_it_is_there():
    metrics = pd.concat([rows(range(0, 61, 10), run_id="a"), rows([0, 10, 30, 40, 50, 60], run_id="b")])
    assert completion.whole_up_to(SPEC, 50, ["a", "b"], metrics) == ["b"]
    assert completion.whole_up_to(SPEC, 10, ["a", "b"], metrics) == []
    assert completion.whole_up_to(SPEC, 70, ["a"], metrics) == ["a"]
    assert completion.run_steps_done(SPEC, completion.assess(SPEC, ["a", "b", "c"], metrics).values()) == 60


def test_the_plan_is_counted_without_expanding_and_asks_before_a_huge_sweep():
    big = spec_from_dict({"name": "b", "grid": {"repr_lr": {"logspace": [1e-5, 1e-1, 100]}, "decoder_lr": {"logspace": [1e-5, 1e-1, 100]}}})
    p = plan.make_plan(big, slots=2, parameters_per_run=1000)
    assert p.runs == grid.count(big) == 10_000 and p.packs == math.ceil(10_000 / p.pack_size)
    assert p.run_steps == 10_000 * big.training.steps and p.needs_confirmation()
    small = plan.make_plan(SPEC, slots=2, parameters_per_run=1000)
    assert not small.needs_confirmation() and "under a minute" in small.describe()
    # the estimate: 6 x parameters x train examples per step, plus the eval forward amortised
    n = 55  # toy addition, p = 10
    assert plan.flops_per_run_step(SPEC, 1000) == pytest.approx(6 * 1000 * math.ceil(0.8 * n) + 2 * 1000 * n / 10)
    gpu = spec_from_dict({"name": "g", "resources": {"gpus_per_trial": 1}})
    assert plan.make_plan(gpu, slots=1, parameters_per_run=1000).hours is None


def test_the_first_signal_in_the_training_loop_is_recorded_and_the_second_raises():
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted) as stopped:
            with interrupts.graceful():
                signal.raise_signal(signal.SIGINT)
                assert interrupts.requested() == signal.SIGINT  # recorded, nothing raised yet
                with pytest.raises(interrupts.Interrupted):
                    signal.raise_signal(signal.SIGINT)
        assert stopped.value.exit_code == 130
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted) as outside:
            signal.raise_signal(signal.SIGTERM)  # outside the loop: at once
        assert outside.value.exit_code == 143 and outside.value.name == "SIGTERM"
        with interrupts.deferred():
            signal.raise_signal(signal.SIGTERM)  # during clean-up: only recorded
    assert interrupts.requested() is None  # handled() leaves nothing behind


def _console(tmp_path, hook: str, *args: str) -> subprocess.CompletedProcess:
    """`grokgrid ARGS` as the console script, with an exit hook of the test's registered first."""
    script = (
        "import atexit, os, signal, sys, threading, time\n"
        f"{hook}\n"
        "from grokgrid import cli\n"
        f"sys.argv = ['grokgrid', *{list(args)!r}]\n"
        "cli.run()\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_the_console_script_keeps_each_commands_exit_code_and_flushes_its_output(tmp_path):
    done = _console(tmp_path, "", "--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("grokgrid "), done
    refused = _console(tmp_path, "", "status", str(tmp_path / "nowhere"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "no such folder" in refused.stderr, refused


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_console_script_exits_ends_it_with_128_plus_the_signal(tmp_path, signum):
    # A thread that keeps signalling from the first exit hook on covers the whole way out: the
    # interpreter's own shutdown resets SIGINT to the default action, which once killed the
    # process with no word (exit -2, seen in CI), so the script must never get that far.
    hook = (
        "def _keep_signalling():\n"
        "    while True:\n"
        f"        os.kill(os.getpid(), {int(signum)})\n"
        "        time.sleep(0.0005)\n"
        "atexit.register(lambda: (threading.Thread(target=_keep_signalling, daemon=True).start(), time.sleep(5)))"
    )
    for _ in range(3):
        out = _console(tmp_path, hook, "--version")
        assert out.returncode == 128 + signum, out
        assert "the command had finished its work" in out.stderr and "Traceback" not in out.stderr, out


_SIGNAL_DURING_IMPORT = """
import os, signal, sys, time
class _SignalWhenTheCliIsImported:
    def find_spec(self, name, path, target=None):
        if name == "grokgrid.cli":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        return None
sys.meta_path.insert(0, _SignalWhenTheCliIsImported())
sys.argv = ["grokgrid", "--version"]
from grokgrid.__main__ import main
main()
"""


def test_ctrl_c_while_the_cli_is_still_importing_is_one_line_and_exit_130(tmp_path):
    # Ctrl-C's default disposition in the child, whatever pytest inherited: a test run started in
    # the background of a non-interactive shell ignores SIGINT, and the child would inherit that
    # (the next test is that case).
    out = subprocess.run([sys.executable, "-c", _SIGNAL_DURING_IMPORT], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert out.returncode == 130, out
    assert out.stderr == "interrupted by Ctrl-C before the command started; nothing was done\n", out


def test_a_caller_that_ignores_ctrl_c_still_has_it_ignored(tmp_path):
    out = subprocess.run([sys.executable, "-c", _SIGNAL_DURING_IMPORT], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert out.returncode == 0 and out.stdout.startswith("grokgrid "), out


STAGED_EARLY = spec_from_dict({"name": "c", "training": {"steps": 100, "eval_every": 10,
                                                          "early_stop": {"threshold": 0.9, "patience": 3}},
                               "stages": [{"name": "shrink", "steps": 45, "train_subset": 0.5}]})


def test_with_stages_a_run_ends_at_the_last_stages_last_step_and_early_stops_only_in_it():
    assert logged_steps(STAGED_EARLY)[-3:] == [130, 140, 145]
    assert completion.assess_run(STAGED_EARLY, "r", rows(range(0, 141, 10))).end is None
    assert completion.assess_run(STAGED_EARLY, "r", rows([*range(0, 141, 10), 145])).end == "complete"
    # decided in stage 0 (steps <= 100): not an end, the trainer keeps it for the last stage
    assert completion.assess_run(STAGED_EARLY, "r", rows(range(0, 101, 10), train_acc=1.0, val_acc=1.0)).end is None
    assert completion.assess_run(STAGED_EARLY, "r", rows(range(0, 111, 10), train_acc=1.0, val_acc=1.0)).end is None
    assert completion.assess_run(STAGED_EARLY, "r", rows(range(0, 131, 10), train_acc=1.0, val_acc=1.0)).end == "early_stop"
    assert completion.run_steps_done(STAGED_EARLY, [completion.RunState("r", 0, "complete")]) == 145
