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
