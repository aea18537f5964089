"""Shared fixtures. Ray tests share one local Ray per test session (started lazily)."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="module")
def ray_local():
    """The session's local Ray for the slow tests (starting Ray costs seconds): started by the
    first module that needs it and kept for the next ones. A module that shuts it down (the
    multi-node test starts its own cluster) just makes the next module start a new one."""
    import ray

    from grokgrid import sweep

    if not ray.is_initialized():
        sweep.connect(num_cpus=2)
    yield


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray_at_the_end():
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def quickstart_results(tmp_path_factory):
    """sweeps/quickstart.yaml trained once per test session on local Ray, as `make demo` does
    (16 runs in packs, classified and reported; ~30 s on 2 cores): the real results the figure
    and tracker tests draw and export. Tests that change the folder work on a copy."""
    from pathlib import Path

    import ray

    import grokgrid
    from grokgrid import sweep

    if not ray.is_initialized():
        sweep.connect(num_cpus=2)
    spec = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
    done = grokgrid.run_sweep(spec, results=tmp_path_factory.mktemp("quickstart"), reporter=grokgrid.Quiet())
    return Path(done.path.local)
