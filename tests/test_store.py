"""Parquet round trips, atomic writes, tolerant readers, dedup on (run_id, step): each through a
local folder and through a pyarrow filesystem URI (file://, the code path of s3:// and gs://)."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from grokgrid import store


def rows(run_id: str, steps, offset: float = 0.0) -> list[dict]:
    return [
        {
            "run_id": run_id,
            "step": s,
            "train_loss": 1.0 / (s + 1) + offset,
            "val_loss": 2.0 / (s + 1),
            "train_acc": min(1.0, s / 100),
            "val_acc": min(1.0, s / 300),
            "weight_norm": 10.0 + s,
            **{k: 0.5 for k in ("repr_norm", "decoder_norm", "rqi", "commutativity_acc", "logit_efficiency", "perturbed_entropy")},
            "elapsed_s": s * 0.01,
        }
        for s in steps
    ]


@pytest.fixture(params=["path", "uri"])
def where(request, tmp_path):
    """The results folder as the store is given it: a local path, or the same folder as a URI."""
    return tmp_path if request.param == "path" else f"file://{tmp_path}"


def no_temp_files(root) -> bool:
    return not [p for p in root.rglob(".*") if p.is_file()]


def test_metrics_round_trip_with_pandas_and_pyarrow(where, tmp_path):
    store.write_metrics_part(where, "a", rows("a", range(0, 50, 10)))
    store.write_metrics_part(where, "a", rows("a", range(50, 100, 10)))
    store.write_metrics_part(where, "b", rows("b", [0, 5]))
    frame = store.read_metrics(where)
    assert list(frame.columns) == list(store.METRIC_COLUMNS)
    assert len(frame) == 12
    assert frame[frame.run_id == "a"]["step"].tolist() == list(range(0, 100, 10))
    assert frame["step"].dtype == "int64" and frame["val_acc"].dtype == "float64"
    # The hive layout is readable by plain pandas/pyarrow too, with run_id recovered from the path.
    table = pq.read_table(tmp_path / store.METRICS_DIR)
    assert table.num_rows == 12
    plain = pd.read_parquet(tmp_path / store.METRICS_DIR)
    assert sorted(plain["run_id"].astype(str).unique()) == ["a", "b"]
    assert no_temp_files(tmp_path)


def test_integers_in_float_columns_keep_the_schema(where):
    r = rows("a", [0])
    r[0]["train_acc"] = 1  # an int where a float belongs must not change the file's type
    path = store.write_metrics_part(where, "a", r)
    assert pq.read_schema(path.path, filesystem=path.fs).field("train_acc").type == "double"


def test_missing_column_is_refused(where, tmp_path):
    bad = [{k: v for k, v in rows("a", [0])[0].items() if k != "val_acc"}]
    with pytest.raises(ValueError, match="val_acc"):
        store.write_metrics_part(where, "a", bad)
    assert not (tmp_path / store.METRICS_DIR).exists() or not any((tmp_path / store.METRICS_DIR).rglob("*.parquet"))


def test_duplicate_steps_keep_the_latest_part(where, tmp_path):
    store.write_metrics_part(where, "a", rows("a", [0, 10, 20]))
    store.write_metrics_part(where, "a", rows("a", [20, 30], offset=5.0))
    frame = store.read_metrics(where)
    assert frame["step"].tolist() == [0, 10, 20, 30]
    assert math.isclose(frame.loc[frame.step == 20, "train_loss"].item(), 1 / 21 + 5.0)


def test_torn_and_foreign_files_are_skipped_with_a_warning(where, tmp_path):
    store.write_metrics_part(where, "a", rows("a", [0, 10]))
    run_dir = tmp_path / store.METRICS_DIR / "run_id=a"
    (run_dir / "part-000000000099.parquet").write_bytes(b"PAR1 torn")
    pd.DataFrame({"x": [1]}).to_parquet(run_dir / "part-000000000100.parquet")
    (run_dir / ".part-000000000200.parquet.tmp").write_bytes(b"in flight")
    with pytest.warns(UserWarning, match="skipping unreadable"):
        frame = store.read_metrics(where)
    assert frame["step"].tolist() == [0, 10]


def test_clear_metrics_from_a_step(where, tmp_path):
    store.write_metrics_part(where, "a", rows("a", [0, 10]))
    store.write_metrics_part(where, "a", rows("a", [20, 30]))
    store.clear_metrics_from(where, "a", 20)
    assert store.read_metrics(where)["step"].tolist() == [0, 10]
    store.clear_metrics_from(where, "a", 0)
    assert store.read_metrics(where).empty


def test_empty_folder_reads_as_an_empty_frame_with_the_schema(where, tmp_path):
    frame = store.read_metrics(where)
    assert frame.empty and list(frame.columns) == list(store.METRIC_COLUMNS)


def test_runs_table_round_trip_and_missing_file(where, tmp_path):
    runs = pd.DataFrame({"run_id": ["a", "b"], "pack_id": ["p", "p"], "repr_lr": [1e-3, 1e-2], "status": ["done", "pending"]})
    store.write_runs(where, runs)
    pd.testing.assert_frame_equal(store.read_runs(where), runs)
    with pytest.raises(FileNotFoundError, match="results folder"):
        store.read_runs(f"{where}/nope")


def test_atomic_write_replaces_whole_files(where, tmp_path):
    path = tmp_path / "x" / "f.txt"
    store.atomic_write_text(f"{where}/x/f.txt", "one")
    store.atomic_write_text(f"{where}/x/f.txt", "two")
    assert path.read_text() == "two"
    assert no_temp_files(tmp_path)


def test_stale_temp_files_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    folder = tmp_path / "metrics" / "run_id=r"
    folder.mkdir(parents=True)
    (folder / ".part-000000000030.parquet.ab12cd.tmp").write_bytes(b"half")
    (folder / "part-000000000000.parquet").write_bytes(b"whole")
    (folder / ".hidden-note").write_bytes(b"not ours")
    assert store.remove_stale_temp_files(folder) == 1
    assert sorted(p.name for p in folder.iterdir()) == [".hidden-note", "part-000000000000.parquet"]
    assert store.remove_stale_temp_files(tmp_path / "absent") == 0


def test_a_finished_runs_parts_compact_into_one_file_with_the_same_rows(where, tmp_path):
    for start in range(0, 3000, 1000):  # three flushes of a 3,000-step run (and a resumed overlap)
        store.write_metrics_part(where, "a", rows("a", range(start, start + 1000, 10)))
    store.write_metrics_part(where, "a", rows("a", range(2000, 3010, 10), offset=1.0))  # the later part wins
    store.write_metrics_part(where, "b", rows("b", range(0, 50, 10)))
    before = store.read_metrics(where)
    assert store.compact_runs(where, ["a", "b"]) == 1  # b has one part already
    parts = sorted(p.name for p in (tmp_path / store.METRICS_DIR / "run_id=a").iterdir())
    assert parts == ["part-000000000000.parquet"]
    after = store.read_metrics(where)
    pd.testing.assert_frame_equal(before, after)
    assert after[(after.run_id == "a") & (after.step == 2500)]["train_loss"].iloc[0] > 1.0
    assert store.compact_runs(where, ["a", "b"]) == 0 and no_temp_files(tmp_path)


def test_a_compacted_run_takes_at_most_20_bytes_per_logged_value(tmp_path):
    # 20 flushes of a 20,000-step run on a log schedule (a dozen rows a flush): one file, not
    # twenty, whose per-file overhead dominated (issue 19 measured ~67 bytes a value).
    import numpy as np

    rng = np.random.default_rng(0)
    for start in range(0, 20000, 1000):
        part = rows("a", range(start, start + 1000, 84))
        for row in part:  # real curves are noisy: no column compresses to nothing
            row.update(train_loss=float(rng.random()), val_loss=float(rng.random()), weight_norm=float(rng.random()))
        store.write_metrics_part(tmp_path, "a", part)
    folder = tmp_path / store.METRICS_DIR / "run_id=a"
    values = 20 * 12 * (len(store.METRIC_COLUMNS) - 1)
    loose = sum(p.stat().st_size for p in folder.iterdir())
    store.compact_runs(tmp_path, ["a"])
    (compact,) = folder.iterdir()
    assert compact.stat().st_size / values <= 20 < loose / values


def test_a_damaged_part_keeps_its_run_uncompacted(tmp_path):
    store.write_metrics_part(tmp_path, "a", rows("a", range(0, 50, 10)))
    store.write_metrics_part(tmp_path, "a", rows("a", range(50, 100, 10)))
    torn = tmp_path / store.METRICS_DIR / "run_id=a" / "part-000000000050.parquet"
    torn.write_bytes(torn.read_bytes()[:40])
    assert store.compact_runs(tmp_path, ["a"]) == 0 and len(list(torn.parent.iterdir())) == 2
