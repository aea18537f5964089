"""Shared fixtures. Ray tests share one local Ray per test session (started lazily)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for every slow test of the session (starting Ray costs seconds)."""
    from grokgrid import sweep

    sweep.connect(num_cpus=2)
    yield
    import ray

    ray.shutdown()
