"""Resuming and faults: checkpoints, the sweep lock, `grokgrid status`, and (slow, real Ray) a
driver SIGKILLed mid-sweep and resumed giving exactly an uninterrupted sweep's results.

Measured cost of a resume (the share of all run-steps trained twice) is printed by the SIGKILL
tests (`pytest -s -k sigkill`); README "Resuming and faults" quotes it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from grokgrid import checkpoint, grid, store
from grokgrid.cli import app
from grokgrid.lock import LOCK_FILE, SweepLock, SweepLocked, holder
from grokgrid.spec import SpecError, dump_spec, spec_from_dict
from results_folders import make_results

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ----------------------------------------------------------------------------- spec fields


def test_resources_checkpoint_and_failure_fields_default_and_validate():
    spec = spec_from_dict({"name": "x"})
    assert spec.resources.checkpoint_every == 1000 and spec.resources.max_failures == 2
    spec = spec_from_dict({"name": "x", "resources": {"checkpoint_every": 50, "max_failures": -1}})
    assert spec.resources.checkpoint_every == 50 and spec.resources.max_failures == -1
    for data, where in [
        ({"checkpoint_every": 0}, "resources.checkpoint_every"),
        ({"checkpoint_every": -5}, "resources.checkpoint_every"),
        ({"checkpoint_every": "often"}, "resources.checkpoint_every"),
        ({"checkpoint_every": 2.5}, "resources.checkpoint_every"),
        ({"max_failures": -2}, "resources.max_failures"),
        ({"max_failures": "a few"}, "resources.max_failures"),
        ({"max_failures": True}, "resources.max_failures"),
    ]:
        with pytest.raises(SpecError) as err:
            spec_from_dict({"name": "x", "resources": data})
        assert err.value.where == where and "\n" not in str(err.value)


def test_checkpoint_and_failure_settings_do_not_change_run_ids():
    base = spec_from_dict({"name": "x", "grid": {"seed": [0, 1]}})
    other = spec_from_dict({"name": "x", "grid": {"seed": [0, 1]}, "resources": {"checkpoint_every": 7, "max_failures": 0}})
    assert [r.run_id for r in grid.expand(base)] == [r.run_id for r in grid.expand(other)]
    assert spec_from_dict(yaml.safe_load(dump_spec(other))) == other


# ----------------------------------------------------------------------------- checkpoints


TRAIN = {
    "name": "ckpt",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 300, "eval_every": 10},
    "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2]},
    "resources": {"flush_every": 30, "checkpoint_every": 100},
}


def test_checkpoint_files_restore_a_pack_exactly_and_refuse_other_packs(tmp_path):
    from grokgrid import train

    spec = spec_from_dict({**TRAIN, "training": {"steps": 80, "eval_every": 10, "precision": "float64"}})
    runs = grid.expand(spec)
    straight = [row for rows in train.run_pack(spec, runs[:2]) for row in rows]
    first = train.PackTrainer(spec, runs[:2])
    rows_seen = []
    for i, rows in enumerate(first.rows()):
        rows_seen.extend(rows)
        if i == 3:
            checkpoint.save_checkpoint(first, tmp_path / "c" / "state.pt", pack_id="p")
            break
    assert not [p for p in (tmp_path / "c").iterdir() if p.name != "state.pt"]  # no temp file left
    data = checkpoint.load_checkpoint(tmp_path / "c" / "state.pt")
    assert data["pack_id"] == "p" and data["trainer"]["step"] == 30
    second = train.PackTrainer(spec, runs[:2])
    checkpoint.restore_checkpoint(second, data)
    for rows in second.rows():
        rows_seen.extend(rows)
    frame = lambda rows: pd.DataFrame(rows).drop(columns="elapsed_s").sort_values(["run_id", "step"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(frame(rows_seen), frame(straight), check_exact=True)
    with pytest.raises(ValueError, match="another pack|runs differ"):
        checkpoint.restore_checkpoint(train.PackTrainer(spec, runs[2:]), data)
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    with pytest.raises(Exception):
        checkpoint.load_checkpoint(tmp_path / "torn.pt")


def test_a_finished_pack_with_every_run_diverged_restores_to_finished(tmp_path):
    from grokgrid import train

    spec = spec_from_dict({**TRAIN, "training": {"steps": 40, "eval_every": 10}, "grid": {"decoder_lr": [1e30, 1e31]}})
    trainer = train.PackTrainer(spec, grid.expand(spec))
    for _ in trainer.rows():
        pass
    assert trainer.finished and not trainer.state.runs and trainer.step < 40  # every run diverged
    checkpoint.save_checkpoint(trainer, tmp_path / "s.pt", pack_id="p")
    again = train.PackTrainer(spec, grid.expand(spec))
    checkpoint.restore_checkpoint(again, checkpoint.load_checkpoint(tmp_path / "s.pt"))
    assert again.finished and list(again.rows()) == []


class Crash(Exception):
    pass


class FakeTune:
    """Stands in for ray.tune inside the trainable: keeps reported checkpoints (as Tune's
    storage would) and can crash the trial at a chosen report."""

    def __init__(self, storage: Path, checkpoint=None, crash=None):
        from ray import tune

        self.Checkpoint = tune.Checkpoint
        self.storage, self.checkpoint, self.crash = storage, checkpoint, crash
        self.reports: list[dict] = []
        self.saved: list = []

    def get_checkpoint(self):
        return self.checkpoint

    def report(self, metrics, checkpoint=None):
        if self.crash is not None and self.crash(metrics, checkpoint is not None):
            raise Crash(metrics["step"])
        if checkpoint is not None:
            target = self.storage / f"checkpoint_{len(self.saved):06d}"
            shutil.copytree(checkpoint.path, target)
            self.saved.append(self.Checkpoint.from_directory(str(target)))
        self.reports.append(dict(metrics))


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _trial(monkeypatch, sweep_dir: Path, fake: FakeTune, spec_data: dict = TRAIN):
    from grokgrid import trainable

    spec = spec_from_dict(spec_data)
    pack = grid.pack(grid.expand(spec), 4)[0]
    monkeypatch.setattr(trainable, "tune", fake)
    config = {"spec": spec.to_dict(), "pack": pack.to_dict(), "sweep_dir": str(sweep_dir), "threads": 1}
    trainable.train_pack_trial(config)
    return pack


def _raw_metrics(sweep_dir: Path) -> pd.DataFrame:
    """Every row of every part as it is on disk (no deduplication)."""
    frames = []
    for part in sorted((sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet")):
        frame = pd.read_parquet(part)
        frame.insert(0, "run_id", part.parent.name.removeprefix("run_id="))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _comparable(sweep_dir: Path) -> pd.DataFrame:
    raw = _raw_metrics(sweep_dir)
    assert not raw.duplicated(["run_id", "step"]).any(), "a (run_id, step) was written twice"
    return raw.drop(columns=["elapsed_s"]).sort_values(["run_id", "step"]).reset_index(drop=True)


DIVERGING = {**TRAIN, "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e30]}}


@pytest.mark.parametrize("where", ["tune", "folder", "newer_folder", "torn_folder", "diverged_runs"])
def test_a_crashed_trial_resumes_from_its_checkpoint_and_rewrites_only_later_rows(tmp_path, monkeypatch, one_thread, where):
    spec_data = DIVERGING if where == "diverged_runs" else TRAIN
    reference = tmp_path / "reference"
    _trial(monkeypatch, reference, FakeTune(tmp_path / "ref-storage"), spec_data)
    expected = _comparable(reference)
    assert sorted(expected["step"].unique()) == list(range(0, 301, 10))
    if where == "diverged_runs":  # two runs left the pack early, as diverged; two go on to the end
        last = expected.groupby("run_id")["step"].max()
        assert sorted(last)[:2] < [100, 100] and sorted(last)[2:] == [300, 300]

    sweep_dir = tmp_path / "crashed"
    # The first attempt dies at step 170: after its checkpoint at 100 and two flushes past it
    # (parts 110-130 and 140-160 are on disk) -- or, for "newer_folder", while Tune persists the
    # checkpoint of step 200 (the results folder already has it, Tune's latest is step 100).
    if where == "newer_folder":
        crash = lambda m, with_checkpoint: with_checkpoint and m["step"] == 200  # noqa: E731
    else:
        crash = lambda m, with_checkpoint: m["step"] == 170  # noqa: E731
    first = FakeTune(tmp_path / "storage", crash=crash)
    with pytest.raises(Crash):
        _trial(monkeypatch, sweep_dir, first, spec_data)
    assert [int(c.path.split("_")[-1]) for c in first.saved] == [0] and first.reports[-1]["step"] < 200
    parts = sorted(p.name for p in (sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet"))
    assert any(int(name[5:17]) > 100 for name in parts), "rows after the checkpoint are on disk"

    folder_checkpoint = next((sweep_dir / store.CHECKPOINTS_DIR).glob("*/state.pt"))
    tune_checkpoint = first.saved[-1]
    if where == "folder":
        tune_checkpoint = None  # no Tune state: the results folder's checkpoint is used
    if where == "torn_folder":
        tune_checkpoint = None
        folder_checkpoint.write_bytes(folder_checkpoint.read_bytes()[:100])  # torn: start from 0
    # What a writer killed mid-write leaves: half a temp file beside a part and a checkpoint.
    some_run = next((sweep_dir / store.METRICS_DIR).iterdir())
    (some_run / ".part-000000000180.parquet.x1y2z3.tmp").write_bytes(b"half a part")
    (folder_checkpoint.parent / ".state.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    second = FakeTune(tmp_path / "storage2", checkpoint=tune_checkpoint)
    _trial(monkeypatch, sweep_dir, second, spec_data)
    assert not [p for p in sweep_dir.rglob(".*.tmp")], "the resumed trial removes the killed writer's temp files"
    restored = {"tune": 100, "folder": 100, "newer_folder": 200, "torn_folder": -1, "diverged_runs": 100}[where]
    assert {r["restored_from_step"] for r in second.reports} == {restored}
    assert second.reports[-1]["done"] is True and second.reports[-1]["checkpoint_step"] == 300
    pd.testing.assert_frame_equal(_comparable(sweep_dir), expected, check_exact=True)


def test_checkpoints_fall_at_the_first_logged_step_after_each_multiple(tmp_path, monkeypatch, one_thread):
    data = {**TRAIN, "training": {"steps": 100, "eval_every": 15}, "resources": {"flush_every": 1000, "checkpoint_every": 40}}
    fake = FakeTune(tmp_path / "storage")
    _trial(monkeypatch, tmp_path / "s", fake, data)
    assert [r["checkpoint_step"] for r in fake.reports if "checkpoint_step" in r] == [45, 90, 100]
    # each checkpoint ends a part: parts start at 0 and right after each checkpoint
    starts = sorted({int(p.name[5:17]) for p in (tmp_path / "s" / store.METRICS_DIR).glob("run_id=*/part-*.parquet")})
    assert starts == [0, 60, 100]


STAGED = {**TRAIN, "training": {"steps": 200, "eval_every": 10},
          "stages": [{"name": "shrink", "steps": 100, "decoder_wd": 0.3}],
          "grid": {"repr_lr": [3e-2], "decoder_lr": [1e-2], "seed": [0, 1], "shrink.train_subset": [0.3, 1.0]}}


# Crash inside stage 0 (restored from 100, trains across the boundary), just after the boundary
# (restored from the checkpoint at 200, the last row of stage 0: between stages) and inside
# stage 1 (restored from 200, after rows of stage 1 were flushed).
@pytest.mark.parametrize("crash_at, restored", [(170, 100), (210, 200), (270, 200)])
def test_a_staged_trial_resumes_inside_and_between_stages_exactly(tmp_path, monkeypatch, one_thread, crash_at, restored):
    reference = tmp_path / "reference"
    _trial(monkeypatch, reference, FakeTune(tmp_path / "ref-storage"), STAGED)
    expected = _comparable(reference)
    assert sorted(expected["step"].unique()) == list(range(0, 301, 10))
    assert (expected["stage"] == (expected["step"] > 200)).all()
    sweep_dir = tmp_path / "crashed"
    first = FakeTune(tmp_path / "storage", crash=lambda m, with_checkpoint: m["step"] == crash_at)
    with pytest.raises(Crash):
        _trial(monkeypatch, sweep_dir, first, STAGED)
    second = FakeTune(tmp_path / "storage2", checkpoint=first.saved[-1])
    _trial(monkeypatch, sweep_dir, second, STAGED)
    assert {r["restored_from_step"] for r in second.reports} == {restored}
    assert second.reports[-1]["done"] is True and second.reports[-1]["checkpoint_step"] == 300
    pd.testing.assert_frame_equal(_comparable(sweep_dir), expected, check_exact=True)


# ----------------------------------------------------------------------------- lock


def test_the_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    sweep_dir = tmp_path / "s"
    with SweepLock(sweep_dir, command="grokgrid sweep a.yaml") as first:
        assert first.held and (sweep_dir / LOCK_FILE).is_file()
        with pytest.raises(SweepLocked) as err:
            SweepLock(sweep_dir).acquire()
        message = str(err.value)
        assert f"is in use by grokgrid pid {os.getpid()} on host " in message
        assert message.endswith("; wait for it or stop it") and "\n" not in message
        who = holder(sweep_dir)
        assert who is not None and who.pid == os.getpid() and who.command == "grokgrid sweep a.yaml"
    assert not (sweep_dir / LOCK_FILE).exists() and holder(sweep_dir) is None
    with SweepLock(sweep_dir):  # free again
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    sweep_dir = tmp_path / "s"
    code = (
        "import sys, time\nfrom grokgrid.lock import SweepLock\n"
        f"SweepLock({str(sweep_dir)!r}, 'grokgrid sweep x').acquire()\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert holder(sweep_dir).pid == proc.pid
        with pytest.raises(SweepLocked):
            SweepLock(sweep_dir).acquire()
    finally:
        proc.kill()
        proc.wait()
    assert (sweep_dir / LOCK_FILE).is_file()  # SIGKILL leaves the file, but not the lock
    assert holder(sweep_dir) is None
    with SweepLock(sweep_dir) as lock:
        assert lock.held


def test_a_second_driver_is_refused_with_one_line_and_changes_nothing(tmp_path):
    spec_path, sweep_dir = make_results(tmp_path, done=1)
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("*")}
    with SweepLock(sweep_dir, command="grokgrid sweep small.yaml"):
        for args in (("sweep", spec_path, "--results", tmp_path / "results"), ("sweep", spec_path, "--results", tmp_path / "results", "--overwrite"), ("resume", sweep_dir)):
            result = invoke(*args)
            assert result.exit_code == 2, result.output
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {sweep_dir} is in use by grokgrid pid {os.getpid()} on host ")
            assert lines[0].endswith("; wait for it or stop it") and "Traceback" not in result.output
        status = invoke("status", sweep_dir)  # readers do not need the lock
        assert status.exit_code == 0 and f"driver: grokgrid pid {os.getpid()}" in status.stdout
    after = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("*")}
    assert after == before


def test_status_counts_runs_from_the_rows_on_disk_and_reports_torn_and_foreign_files(tmp_path):
    _, sweep_dir = make_results(tmp_path, done=1)
    runs = store.read_runs(sweep_dir)
    done_run, open_run = runs["run_id"][0], runs["run_id"][1]
    result = invoke("status", sweep_dir)
    assert result.exit_code == 0, result.output
    assert "2 runs: 1 done, 1 started, 0 pending, 0 failed; 60/80 run-steps done on disk (75%)" in " ".join(result.stdout.split())
    assert "no driver is running" in " ".join(result.stdout.split())

    # runs.parquet's word is not taken: a run marked done whose rows end early is not done.
    runs.loc[runs["run_id"] == open_run, "status"] = "done"
    store.write_runs(sweep_dir, runs)
    assert "1 done, 1 started" in " ".join(invoke("status", sweep_dir).stdout.split())
    labelled = invoke("classify", sweep_dir)
    assert labelled.exit_code == 0 and "1 of 2 runs are unfinished: their labels are provisional" in " ".join(labelled.stdout.split())
    labels_before = (sweep_dir / store.LABELS_FILE).read_bytes()

    torn_dir = sweep_dir / store.METRICS_DIR / f"run_id={done_run}"
    (torn_dir / "part-000000000030.parquet").write_bytes(b"PAR1 torn")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), torn_dir / "part-000000000040.parquet")  # a foreign Parquet file
    result = invoke("status", sweep_dir)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "2 runs: 0 done, 1 started, 0 pending, 0 failed, 1 damaged" in text
    assert f"damaged: run {done_run}: unreadable metrics part" in text
    assert "phases so far" in result.stdout
    warnings_ = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings_) == 2 and all("part-0000000000" in w for w in warnings_)
    # classify and report refuse to label or draw partial rows: one line naming the run or file
    # and the fix, exit 2, nothing written.
    for command in ("classify", "report"):
        out = invoke(command, sweep_dir)
        assert out.exit_code == 2, (command, out.output)
        line = out.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in out.output
        assert f"grokgrid resume {sweep_dir}` trains the damaged run(s) again" in line, line
        assert done_run in line or "part-0000000000" in line
    assert (sweep_dir / store.LABELS_FILE).read_bytes() == labels_before and not (sweep_dir / store.REPORT_FILE).exists()


def test_status_and_resume_refuse_a_folder_that_is_not_a_sweep(tmp_path):
    (tmp_path / "plain").mkdir()
    for command in ("status", "resume"):
        result = invoke(command, tmp_path / "plain")
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "not a grokgrid results folder" in result.stderr
        result = invoke(command, tmp_path / "absent")
        assert result.exit_code == 2 and "no such folder" in result.stderr
    assert not (tmp_path / "plain" / LOCK_FILE).exists() and not (tmp_path / "absent").exists()


# ----------------------------------------------------------------------------- SIGKILL (slow)

KILL = {
    "name": "kill",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 400, "eval_every": 10},
    "grid": {"repr_lr": [1e-3, 3e-2, 1e-1], "decoder_lr": [1e-3, 1e-2]},
    "resources": {"flush_every": 30, "checkpoint_every": 100, "pack_size": 2},
    "phases": {"gap": 40},
}
RESUMED = re.compile(r"pack (\w+) resumed from step (\d+)")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # each driver starts its own local Ray
    env["COLUMNS"] = "200"
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    # A new session: the driver and every Ray process it starts share one process group, so
    # one os.killpg takes the whole local cluster down, as a dead machine would.
    return subprocess.Popen(
        [sys.executable, "-m", "grokgrid", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
        env=_env(), start_new_session=True,
    )


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    time.sleep(0.5)  # let the kernel reap Ray's processes


def _done_runs(sweep_dir: Path) -> pd.DataFrame:
    try:
        return store.read_runs(sweep_dir)
    except Exception:  # noqa: BLE001 - not written yet
        return pd.DataFrame(columns=["run_id", "pack_id", "status"])


def _has_checkpoint(sweep_dir: Path, pack_ids=None) -> bool:
    found = {p.parent.name for p in (sweep_dir / store.CHECKPOINTS_DIR).glob("*/state.pt")}
    return bool(found) if pack_ids is None else bool(found & set(pack_ids))


def _kill_point(name: str, sweep_dir: Path) -> bool:
    runs = _done_runs(sweep_dir)
    n_done = int((runs["status"] == "done").sum())
    if name == "first_part":  # rows on disk, no checkpoint yet: the packs restart from step 0
        return any((sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet"))
    if name in ("first_checkpoint", "torn_tune_state"):
        return n_done == 0 and _has_checkpoint(sweep_dir)
    if name == "first_pack_done":
        return n_done >= 2
    if name == "late_no_tune_state":  # two packs done, the last one checkpointed
        pending = runs.loc[runs["status"] != "done", "pack_id"]
        return n_done >= 4 and _has_checkpoint(sweep_dir, pending)
    if name == "refine_round":  # a refinement round recorded in the folder's spec, its runs training
        try:
            spec = spec_from_dict(yaml.safe_load((sweep_dir / store.SPEC_FILE).read_text()))
        except Exception:  # noqa: BLE001 - not written yet, or being replaced
            return False
        if spec.refine is None or not spec.refine.points:
            return False
        refined = grid.expand(spec)[spec.grid.size():]
        return any((sweep_dir / store.METRICS_DIR / f"run_id={r.run_id}").glob("part-*.parquet") for r in refined)
    raise ValueError(name)


def _uninterrupted(tmp_path_factory, name: str, data: dict) -> Path:
    """``data``'s sweep, never interrupted (same seeds, same packs, one torch thread per trial)."""
    folder = tmp_path_factory.mktemp(name)
    spec = folder / "kill.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = invoke("sweep", spec, "--results", folder / "results", "--no-report")
    assert result.exit_code == 0, result.output
    sweep_dir = folder / "results" / "kill"
    assert invoke("classify", sweep_dir).exit_code == 0
    return sweep_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_local):
    return _uninterrupted(tmp_path_factory, "reference", KILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, storage",
    [(p, "path") for p in ("first_part", "first_checkpoint", "first_pack_done", "late_no_tune_state", "torn_tune_state")]
    # Results under a filesystem URI (the path of s3://): same guarantees, lock in the cache.
    + [("first_checkpoint", "uri")],
)
def test_sigkill_the_driver_then_resume_equals_an_uninterrupted_sweep(tmp_path, reference, point, storage, monkeypatch):
    _kill_then_resume(tmp_path, reference, point, storage, monkeypatch, KILL)


# The same kills on a two-stage spec: stage 0 ends at step 200, a checkpoint (between stages);
# then 200 steps on half of each run's training set with another weight decay.
STAGED_KILL = {**KILL, "name": "kill", "training": {"steps": 200, "eval_every": 10},
               "stages": [{"name": "shrink", "steps": 200, "train_subset": 0.5, "decoder_wd": 0.1}]}


@pytest.fixture(scope="module")
def staged_reference(tmp_path_factory, ray_local):
    sweep_dir = _uninterrupted(tmp_path_factory, "staged-reference", STAGED_KILL)
    assert set(store.read_metrics(sweep_dir)["stage"]) == {0, 1}
    return sweep_dir


@pytest.mark.slow
@pytest.mark.parametrize("point", ["first_checkpoint", "first_pack_done", "late_no_tune_state"])
def test_sigkill_a_staged_sweep_then_resume_equals_an_uninterrupted_one(tmp_path, staged_reference, point, monkeypatch):
    _kill_then_resume(tmp_path, staged_reference, point, "path", monkeypatch, STAGED_KILL)


# A refined sweep (one round along repr_lr), killed while the round's runs train: the round is
# recorded in the folder's spec, so the resume trains its runs, not a round of its own.
REFINED_KILL = {**KILL, "refine": {"axes": ["repr_lr"], "rounds": 1}}


@pytest.fixture(scope="module")
def refined_reference(tmp_path_factory, ray_local):
    sweep_dir = _uninterrupted(tmp_path_factory, "refined-reference", REFINED_KILL)
    assert spec_from_dict(yaml.safe_load((sweep_dir / store.SPEC_FILE).read_text())).refine.points[0]
    return sweep_dir


@pytest.mark.slow
def test_sigkill_a_refinement_round_then_resume_equals_an_uninterrupted_one(tmp_path, refined_reference, monkeypatch):
    _kill_then_resume(tmp_path, refined_reference, "refine_round", "path", monkeypatch, REFINED_KILL)


def _kill_then_resume(tmp_path, reference, point, storage, monkeypatch, spec_data) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the URI's lock, for both drivers
    spec_path = tmp_path / "kill.yaml"
    spec_path.write_text(yaml.safe_dump(spec_data))
    total_steps = spec_from_dict(spec_data).total_steps
    sweep_dir = tmp_path / "results" / "kill"  # on this machine's disk either way: checked directly
    results = str(tmp_path / "results") if storage == "path" else f"file://{tmp_path}/results"
    where = f"{results}/kill"  # what the commands are given
    proc = _start(["sweep", str(spec_path), "--storage", results, "--num-cpus", "2", "--no-report"], tmp_path / "sweep.log")
    try:
        deadline = time.monotonic() + 120
        while not _kill_point(point, sweep_dir):
            assert proc.poll() is None, f"the sweep ended before the kill point {point}:\n" + (tmp_path / "sweep.log").read_text()
            assert time.monotonic() < deadline, "kill point not reached in time"
            time.sleep(0.02)
        if point == "first_checkpoint":
            # While it runs, a second driver is refused, and status reads without the lock.
            second = invoke("resume", where)
            assert second.exit_code == 2 and f"{where} is in use by grokgrid pid {proc.pid} on host" in second.stderr
            assert f"driver: grokgrid pid {proc.pid}" in invoke("status", where).stdout
    finally:
        _kill(proc)
    # Tune keeps each pack's latest checkpoint only (two for a moment, while it registers the
    # next): a finished 400-step pack took four (checkpoint_every 100), and all four stayed
    # before. What a restore may still name is covered by the folder's own copy (below).
    kept = [len(list(trial.glob("checkpoint_*"))) for trial in (sweep_dir / store.TUNE_DIR).glob("pack_*")]
    assert max(kept, default=0) <= 2, kept
    on_disk = store.read_metrics(sweep_dir).groupby("run_id")["step"].max().to_dict()
    # Runs whose last row was on disk but whose pack's end the driver had not yet recorded: done
    # by their rows, trained on a node nobody wrote down (unless Tune's restore reruns the pack).
    recorded = _done_runs(sweep_dir)
    recorded_done = set(recorded.loc[recorded["status"] == "done", "run_id"])
    unrecorded = {r for r, step in on_disk.items() if step >= total_steps} - recorded_done
    status = invoke("status", where)
    assert status.exit_code == 0 and "driver: grokgrid pid" not in status.stdout  # the killed driver holds nothing
    if any(step < total_steps for step in on_disk.values()) or len(on_disk) < len(recorded):
        # Runs left to train: status points to the resume (on a loaded machine the last pack can
        # finish writing in the moment before the kill lands, and then nothing is left).
        assert "no driver is running" in " ".join(status.stdout.split())
    if point == "late_no_tune_state":
        shutil.rmtree(sweep_dir / store.TUNE_DIR)  # resume must fall back on the folder's checkpoints
    if point == "torn_tune_state":
        # A kill while Tune copied its search algorithm's state into the folder leaves the file
        # torn (seen once in a full test run as an empty one: Tune's restore logged EOFError and the resumed
        # driver crashed on KeyError 'pack'). Resume must refuse that state and relaunch the
        # packs from the folder's checkpoints.
        states = sorted((sweep_dir / store.TUNE_DIR).glob("basic-variant-state-*.json"))
        assert states, "Tune had saved no search state to tear"
        states[-1].write_bytes(b"")

    # The new driver runs in this process, on the tests' local Ray (a driver on another Ray than
    # the killed one's, as after a lost machine; it saves starting one more Ray per test).
    resumed = invoke("resume", where, "--no-report")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert invoke("classify", where).exit_code == 0
    errors = {p.parent.name: p.read_text()[-2000:] for p in (sweep_dir / store.TUNE_DIR).glob("*/error.txt")}

    # Same run set, every run done, no (run_id, step) twice on disk, identical numbers and labels.
    runs, ref_runs = store.read_runs(sweep_dir), store.read_runs(reference)
    assert set(runs["status"]) == {"done"}, (resumed.stdout, errors)
    # node_id says where each pack trained: a resumed sweep's packs ran on a new Ray's node.
    assert runs.loc[~runs["run_id"].isin(unrecorded), "node_id"].str.len().gt(0).all()
    pd.testing.assert_frame_equal(
        runs.drop(columns="node_id").sort_values("run_id").reset_index(drop=True),
        ref_runs.drop(columns="node_id").sort_values("run_id").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(_comparable(sweep_dir), _comparable(reference), check_exact=True)
    labels, ref_labels = store.read_labels(sweep_dir), store.read_labels(reference)
    pd.testing.assert_frame_equal(labels.sort_values("run_id").reset_index(drop=True), ref_labels.sort_values("run_id").reset_index(drop=True))
    assert not (sweep_dir / LOCK_FILE).exists() and not (sweep_dir / store.CHECKPOINTS_DIR).exists()
    assert not [p for p in sweep_dir.rglob(".*") if p.is_file() and store.TUNE_DIR not in p.parts]

    # The cost: steps trained before the kill past the checkpoint each pack resumed from. Rows
    # on disk at the kill bound it from below (up to flush_every steps more were in memory).
    restored = {pack: int(step) for pack, step in RESUMED.findall(resumed.stdout)}
    pack_of = dict(zip(runs["run_id"], runs["pack_id"]))
    reached: dict[str, int] = {}
    for run_id, step in on_disk.items():
        reached[pack_of[run_id]] = max(reached.get(pack_of[run_id], 0), step)
    size = runs.groupby("pack_id").size().to_dict()
    recomputed = sum(size[p] * max(0, s - restored.get(p, 0)) for p, s in reached.items() if s < total_steps)
    total = len(runs) * total_steps
    print(f"\n[{point}] resumed packs {restored or 'none (restarted from step 0)'}; "
          f">= {recomputed} of {total} run-steps recomputed ({100 * recomputed / total:.1f}%)")


# ----------------------------------------------------------------------------- SIGINT / SIGTERM (slow)


def _wait_for_rows(proc: subprocess.Popen, sweep_dir: Path, log: Path, parts: int = 1) -> None:
    """Until ``parts`` metrics parts are on disk."""
    deadline = time.monotonic() + 120
    while sum(1 for _ in (sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet")) < parts:
        assert proc.poll() is None, "the sweep ended before its first rows:\n" + log.read_text()
        assert time.monotonic() < deadline, "no rows in time"
        time.sleep(0.02)


INTERRUPTS = [
    # (signals, sent to: "group" = the driver's process group, as a terminal's Ctrl-C or systemd
    # does; "driver" = its pid alone, as `kill`, docker stop or Kubernetes do; seed of the moment)
    ((signal.SIGINT,), "group", 1),
    ((signal.SIGINT,), "group", 2),
    ((signal.SIGTERM,), "driver", 3),
    ((signal.SIGINT, signal.SIGINT), "group", 4),  # a second Ctrl-C: stop at once, still resumable
    # SIGTERM to the whole group also stops the local Ray's own processes (Ray blocks only SIGINT
    # in them), and Ray ends its driver at once when they die: no message, but nothing is lost.
    ((signal.SIGTERM,), "group", 5),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals, target, seed", INTERRUPTS,
    ids=[f"{'+'.join(signal.Signals(s).name for s in sig)}-{target}-{seed}" for sig, target, seed in INTERRUPTS],
)
def test_sigint_or_sigterm_then_resume_equals_an_uninterrupted_sweep(tmp_path, reference, signals, target, seed):
    import random

    spec_path = tmp_path / "kill.yaml"
    spec_path.write_text(yaml.safe_dump(KILL))
    sweep_dir = tmp_path / "results" / "kill"
    log = tmp_path / "sweep.log"
    proc = _start(["sweep", str(spec_path), "--storage", str(tmp_path / "results"), "--num-cpus", "2", "--no-report"], log)
    try:
        # A random moment measured in progress, not seconds (a fast machine finished the whole
        # sweep before a signal sent 3.8 s after its first rows): once a random number of the
        # sweep's 96 metrics parts (6 runs x 16: a flush every 30 steps and one at each
        # checkpoint) is on disk, between its first rows and about half of it.
        started = time.monotonic()
        _wait_for_rows(proc, sweep_dir, log, parts=random.Random(seed).randint(1, 50))
        moment = time.monotonic() - started
        for i, sig in enumerate(signals):
            if i:
                time.sleep(0.3)
            if target == "group":
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        code = proc.wait(timeout=150)  # a group SIGTERM kills Ray's GCS: Ray ends its driver after 60 s
    finally:
        _kill(proc)
    output = log.read_text()
    print(f"\n[{signals} after {moment:.2f} s] exit {code}: {output.strip().splitlines()[-1]}")
    graceful = not (target == "group" and signals[0] == signal.SIGTERM)
    if graceful:
        assert code == 128 + signals[0], output
        assert "Traceback" not in output, output
        finished_first = "the command had finished its work" in output  # the signal came while exiting
        assert f"resume with: grokgrid resume {sweep_dir}" in output or "every run is done" in output or finished_first, output
        assert "trained in" not in output or "every run is done" in output or finished_first

    # runs.parquet never calls a run done whose rows on disk are not whole to the end; after one
    # graceful signal it says exactly which are.
    from grokgrid import completion

    spec = spec_from_dict(KILL)
    runs = store.read_runs(sweep_dir)
    states = completion.assess(spec, runs["run_id"], store.read_metrics(sweep_dir))
    for run_id, status in zip(runs["run_id"], runs["status"]):
        assert status != "done" or states[run_id].finished, (run_id, status, states[run_id])
        if graceful and len(signals) == 1:
            assert (status == "done") == states[run_id].finished, (run_id, status, states[run_id])
    unfinished = [r for r, s in states.items() if not s.finished]
    if unfinished and graceful and len(signals) == 1:
        assert f"{len(unfinished)} run(s) unfinished" in output
    status = invoke("status", sweep_dir)
    assert f"{6 - len(unfinished)} done" in status.stdout
    if unfinished:
        assert "no driver is running" in " ".join(status.stdout.split())

    resumed = invoke("resume", sweep_dir, "--no-report")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert invoke("classify", sweep_dir).exit_code == 0
    assert set(store.read_runs(sweep_dir)["status"]) == {"done"}
    pd.testing.assert_frame_equal(_comparable(sweep_dir), _comparable(reference), check_exact=True)
    labels, ref_labels = store.read_labels(sweep_dir), store.read_labels(reference)
    pd.testing.assert_frame_equal(labels.sort_values("run_id").reset_index(drop=True), ref_labels.sort_values("run_id").reset_index(drop=True))
    assert not (sweep_dir / LOCK_FILE).exists() and not (sweep_dir / store.CHECKPOINTS_DIR).exists()
