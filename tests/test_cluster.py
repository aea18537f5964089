"""A multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and two workers with fake
GPUs and 1 CPU each, all on this machine). A packed sweep through the CLI spreads its packs over
both workers and writes to a shared storage URI. Then a worker is lost mid-sweep: Tune retries the
lost trial on the other worker from its last checkpoint (``FailureConfig(max_failures)``), and
every run finishes with the same numbers as an uninterrupted pack.

This module shuts down the tests' shared local Ray first and its own cluster at the end; the next
module that needs Ray starts a local one again (conftest.ray_local).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from grokgrid import grid, store
from grokgrid.spec import spec_from_dict

pytestmark = pytest.mark.slow

SPEC = {
    "name": "lost_node",
    "model": {"hidden": [16, 16]},
    "training": {"steps": 600, "eval_every": 10},
    "grid": {"repr_lr": [1e-3, 3e-2], "decoder_lr": [1e-3, 1e-2]},
    # One fake GPU per trial: trials go to the two workers only (the head has no GPU).
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 1, "flush_every": 30, "checkpoint_every": 100, "max_failures": 2},
}


# The lost-node test's sweep: long enough that a pack cannot finish in the moment between both
# packs' first checkpoints and the worker's removal (600 steps of this toy model take about a
# second on a fast core, and a pack could end first: no trial was then retried).
LOST = {**SPEC, "training": {"steps": 6000, "eval_every": 100},
        "resources": {**SPEC["resources"], "checkpoint_every": 500}}


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    from grokgrid import sweep

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            # Notice a dead node within seconds (defaults take tens of seconds).
            "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    sweep.connect(address=cluster.address)
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def _checkpointed_packs(sweep_dir: Path) -> set[str]:
    return {p.parent.name for p in (sweep_dir / store.CHECKPOINTS_DIR).glob("*/state.pt")}


def test_a_packed_sweep_spreads_over_both_workers_and_writes_to_shared_storage(tmp_path, cluster):
    """The CLI on a running cluster (--address) with results under a filesystem URI (--storage):
    the packs train on both worker nodes, and every node writes its runs' parts to the storage."""
    import yaml
    from typer.testing import CliRunner

    from grokgrid.cli import app

    _, workers = cluster
    spec_file = tmp_path / "spread.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "name": "spread", "resources": {**SPEC["resources"], "pack_size": 2}}))
    storage = f"file://{tmp_path}/shared/results"
    result = CliRunner().invoke(
        app, ["sweep", str(spec_file), "--address", "auto", "--storage", storage, "--gpus-per-trial", "1", "--no-report"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "4 runs in 2 packs of up to 2" in result.stdout

    runs = store.read_runs(f"{storage}/spread")
    assert set(runs["status"]) == {"done"}
    # One pack per worker: both have the only GPUs, and the two trials ran at once.
    assert runs.groupby("pack_id")["node_id"].nunique().eq(1).all()
    assert set(runs["node_id"]) == {w.node_id for w in workers}
    metrics = store.read_metrics(f"{storage}/spread")
    assert len(metrics) == 4 * 61 and not metrics.duplicated(["run_id", "step"]).any()


def test_a_lost_worker_node_is_survived_by_resuming_its_trial_elsewhere(tmp_path, cluster):
    from grokgrid import sweep, train

    ray_cluster, workers = cluster
    spec = spec_from_dict(LOST)
    packs = grid.pack(grid.expand(spec), 2)
    sweep_dir = tmp_path / "lost_node"
    assert sweep.parallel_slots(spec.resources) == 2

    removed: dict[str, float] = {}

    def remove_a_worker_once_both_trials_checkpointed() -> None:
        deadline = time.monotonic() + 120
        while len(_checkpointed_packs(sweep_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        ray_cluster.remove_node(workers[0], allow_graceful=False)
        # The node's trial process dies a moment after its raylet and may write parts until
        # then; the retry cannot start before the node is declared dead (3 missed 1 s checks).
        time.sleep(1.0)
        removed["at"] = time.time()

    killer = threading.Thread(target=remove_a_worker_once_both_trials_checkpointed, daemon=True)
    killer.start()
    done = []
    outcomes = sweep.launch(spec, sweep_dir, packs, on_pack_done=done.append)
    killer.join(timeout=5)
    assert "at" in removed, "the worker was never removed"

    # Every run finished; one trial was retried, from a checkpoint, not from step 0.
    assert sorted(o.pack_id for o in outcomes) == sorted(p.pack_id for p in packs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    resumed = [o for o in outcomes if o.restored_from_step is not None]
    assert len(resumed) == 1 and resumed[0].restored_from_step >= 500, outcomes
    assert {o.pack_id for o in done} == {p.pack_id for p in packs}
    lost = next(p for p in packs if p.pack_id == resumed[0].pack_id)
    for run in lost.runs:
        parts = sorted((sweep_dir / store.METRICS_DIR / f"run_id={run.run_id}").glob("part-*.parquet"))
        first_steps = [int(p.name[5:17]) for p in parts]
        # Parts up to the checkpoint were kept from before the node loss; later ones rewritten.
        kept = [s for s, p in zip(first_steps, parts) if p.stat().st_mtime < removed["at"]]
        rewritten = [s for s, p in zip(first_steps, parts) if p.stat().st_mtime >= removed["at"]]
        assert kept and kept[0] == 0 and max(kept) <= resumed[0].restored_from_step
        assert rewritten and min(rewritten) > resumed[0].restored_from_step

    # No (run_id, step) twice on disk, and the numbers of an uninterrupted pack.
    frames = []
    for part in (sweep_dir / store.METRICS_DIR).glob("run_id=*/part-*.parquet"):
        frame = pd.read_parquet(part)
        frame.insert(0, "run_id", part.parent.name.removeprefix("run_id="))
        frames.append(frame)
    on_disk = pd.concat(frames, ignore_index=True)
    assert not on_disk.duplicated(["run_id", "step"]).any()
    assert len(on_disk) == 4 * 61  # steps 0, 100, ..., 6000
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trials (one CPU each)
    try:
        expected = pd.DataFrame([row for rows in train.run_pack(spec, lost.runs) for row in rows])
    finally:
        torch.set_num_threads(threads)
    got = on_disk[on_disk["run_id"].isin([r.run_id for r in lost.runs])]
    key = ["run_id", "step"]
    pd.testing.assert_frame_equal(
        got.drop(columns="elapsed_s").sort_values(key).reset_index(drop=True),
        expected.drop(columns="elapsed_s").sort_values(key).reset_index(drop=True)[list(got.drop(columns="elapsed_s").columns)],
        check_exact=True,
    )
