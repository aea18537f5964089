"""A results folder written by an older grokgrid still reads, resumes and reports.

tests/data/pre-api/ was made by grokgrid at commit abb5baa (before the library under the CLI,
the report package and the typed spec) from tests/data/pre-api.yaml: a 4-run sweep in 2 packs,
stopped by Ctrl-C half way (780 of 1,600 run-steps on disk, a checkpoint per pack, Tune's
experiment state). Run ids, the frozen spec's format, the Parquet tables and the checkpoints
must all still be understood: resuming it must give exactly what a fresh sweep of the same spec
gives today.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import grokgrid
from grokgrid import store
from grokgrid.spec import parse_yaml

DATA = Path(__file__).parent / "data"


@pytest.fixture
def old_folder(tmp_path) -> Path:
    target = tmp_path / "results" / "pre-api"
    shutil.copytree(DATA / "pre-api", target)
    return target


def test_an_old_interrupted_folder_reads_with_todays_code(old_folder):
    s = grokgrid.open(old_folder)
    now = s.status()
    assert (now.counts["started"], now.counts["done"], now.run_steps_done, now.run_steps_total) == (4, 0, 780, 1600)
    assert not now.damaged and not now.unreadable and now.table_problem is None
    # the runs table's ids are today's ids of the same spec (the run-id recipe did not move)
    today = grokgrid.load(parse_yaml((DATA / "pre-api.yaml").read_text()))
    from grokgrid import grid

    assert set(s.runs["run_id"]) == {r.run_id for r in grid.expand(today)}
    assert s.spec.to_dict() == today.to_dict()


@pytest.mark.slow
def test_an_old_interrupted_folder_resumes_to_what_a_fresh_sweep_gives_today(old_folder, tmp_path, ray_local):
    resumed = grokgrid.resume_sweep(old_folder, reporter=grokgrid.Quiet())
    assert resumed.status().counts["done"] == 4 and (old_folder / store.REPORT_FILE).is_file()
    fresh = grokgrid.run_sweep(DATA / "pre-api.yaml", results=tmp_path / "fresh", reporter=grokgrid.Quiet())
    old_rows, new_rows = (s.metrics().drop(columns="elapsed_s").reset_index(drop=True) for s in (resumed, fresh))
    assert not old_rows.duplicated(["run_id", "step"]).any()
    pd.testing.assert_frame_equal(old_rows, new_rows)
    pd.testing.assert_frame_equal(resumed.labels, fresh.labels)
