"""Expand a spec into runs with stable ids, and group runs into packs (one Ray Tune trial each).

A run's id is a hash of everything that determines its results (task, model, training recipe
and its hyperparameters), so the same config always gets the same id: in a rerun, in a resumed
sweep, or in another sweep. The sweep's name and the phase criteria do not enter the id: they
change how results are filed and read, not what training produces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from grokgrid.spec import HYPERPARAMETERS, SweepSpec

RUN_ID_LENGTH = 12


@dataclass(frozen=True)
class RunConfig:
    """One training run: the shared recipe of its sweep plus its own hyperparameters."""

    run_id: str
    repr_lr: float
    decoder_lr: float
    repr_wd: float
    decoder_wd: float
    init_scale: float
    train_fraction: float
    seed: int

    def hyperparameters(self) -> dict[str, Any]:
        return {h: getattr(self, h) for h in HYPERPARAMETERS}


@dataclass(frozen=True)
class Pack:
    """Runs trained together in one trial (they share every shape; see DESIGN.md section 3)."""

    pack_id: str
    runs: tuple[RunConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"pack_id": self.pack_id, "runs": [dataclasses.asdict(r) for r in self.runs]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Pack":
        return Pack(pack_id=data["pack_id"], runs=tuple(RunConfig(**r) for r in data["runs"]))


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]


def recipe(spec: SweepSpec) -> dict[str, Any]:
    """What every run of the sweep shares and what determines its results."""
    data = spec.to_dict()
    return {key: data[key] for key in ("task", "model", "training")}


def run_id(spec: SweepSpec, hyperparameters: dict[str, Any]) -> str:
    return _digest({"recipe": recipe(spec), "hyperparameters": hyperparameters})


def expand(spec: SweepSpec) -> list[RunConfig]:
    """The Cartesian product of the grid, in HYPERPARAMETERS order (seed varies fastest)."""
    axes = [getattr(spec.grid, h) for h in HYPERPARAMETERS]
    runs = []
    for values in itertools.product(*axes):
        hp = dict(zip(HYPERPARAMETERS, values))
        hp["seed"] = int(hp["seed"])
        runs.append(RunConfig(run_id=run_id(spec, hp), **hp))
    return runs


def pack(runs: list[RunConfig], size: int = 1) -> list[Pack]:
    """Group runs into packs of at most ``size``, keeping expansion order.

    Training runs batched inside one pack is the packs issue's work; until then packs hold one
    run each, and the pack id is the hash of its run ids (stable as long as its runs are).
    """
    if size < 1:
        raise ValueError(f"pack size must be >= 1, got {size}")
    packs = []
    for start in range(0, len(runs), size):
        members = tuple(runs[start : start + size])
        packs.append(Pack(pack_id=_digest([r.run_id for r in members]), runs=members))
    return packs
