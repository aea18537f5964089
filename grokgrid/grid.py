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
import math
from dataclasses import dataclass
from typing import Any

from grokgrid import spec_fields
from grokgrid.spec import HYPERPARAMETERS, TRAINING_ADDED_LATER, SweepSpec

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
    # Values of the grid's extra axes (GridSpec.extra), as (dotted name, value) pairs in the
    # grid's order: a stage field (`shrink.train_subset`), an intervention's strength, or a
    # task, model or training field (`task.p`; a list-valued field such as model.hidden holds a
    # tuple). Empty for a grid without them, so those runs' ids and packs read exactly as before.
    extra: tuple[tuple[str, Any], ...] = ()

    def hyperparameters(self) -> dict[str, Any]:
        """The seven hyperparameters, then the extra axes' values (what enters the run id)."""
        return {**{h: getattr(self, h) for h in HYPERPARAMETERS}, **dict(self.extra)}

    def columns(self) -> dict[str, Any]:
        """The hyperparameters as runs.parquet's columns hold them: a list value as its text."""
        return {name: spec_fields.shown(value) for name, value in self.hyperparameters().items()}

    def field_values(self) -> tuple[tuple[str, Any], ...]:
        """The run's field-axis values (spec_fields.py): runs with different ones train under
        different variants of the spec, so never in one pack."""
        return tuple((name, value) for name, value in self.extra if spec_fields.is_field_axis(name))

    def value(self, axis: str, default: Any = None) -> Any:
        """One extra axis' value, or ``default`` when the run has none for it."""
        return dict(self.extra).get(axis, default)


@dataclass(frozen=True)
class Pack:
    """Runs trained together in one trial (they share every shape; see DESIGN.md section 3)."""

    pack_id: str
    runs: tuple[RunConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"pack_id": self.pack_id, "runs": [dataclasses.asdict(r) for r in self.runs]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Pack":
        return Pack(pack_id=data["pack_id"], runs=tuple(_run_from_dict(r) for r in data["runs"]))


def _run_from_dict(data: dict[str, Any]) -> RunConfig:
    # JSON (Tune's param space) turns the extra pairs, and a list value's tuple, into lists; a
    # pack recorded before they existed has none.
    extra = tuple((str(name), spec_fields.as_tuple(value)) for name, value in data.get("extra", ()))
    return RunConfig(**{**data, "extra": extra})


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]


# Optional training features, and the value that means "off". Off, they are left out of the
# recipe, so adding such a feature to grokgrid never changes the ids of runs that do not use it.
OPTIONAL_TRAINING = {"early_stop": None, "log_schedule": None, "batch_size": None, "warmup_steps": 0, **TRAINING_ADDED_LATER}


def recipe(spec: SweepSpec) -> dict[str, Any]:
    """What every run of the sweep shares and what determines its results. Stages enter only
    when there are some (a spec without them keeps its run ids); the interventions
    (spec.TRAINING_ADDED_LATER) only when on."""
    data = spec.to_dict()
    training = {k: v for k, v in data["training"].items() if not (k in OPTIONAL_TRAINING and v == OPTIONAL_TRAINING[k])}
    # Where a task's files are (mnist's root) is not what they hold: left out (Kind.locations).
    task = {k: v for k, v in data["task"].items() if k not in spec.task.locations()}
    shared = {"task": task, "model": data["model"], "training": training}
    if spec.stages:
        shared["stages"] = data["stages"]
    return shared


def run_id(spec: SweepSpec, hyperparameters: dict[str, Any]) -> str:
    return _digest({"recipe": recipe(spec), "hyperparameters": hyperparameters})


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def expand(spec: SweepSpec) -> list[RunConfig]:
    """The Cartesian product of the grid, in HYPERPARAMETERS order with the extra axes before the
    seed (the seed varies fastest, so a config's seeds stay side by side).

    Ids are those of ``run_id``, built faster: the recipe's JSON is encoded once and each run's
    payload is assembled as text (the same bytes as ``_digest``'s, since "hyperparameters" sorts
    before "recipe"), so a 10^6-run grid expands in seconds rather than minutes."""
    head = '{"hyperparameters":{'
    tail = '},"recipe":' + _json(recipe(spec)) + "}"
    extra = [name for name, _ in spec.grid.extra]
    names = [*HYPERPARAMETERS[:-1], *extra, "seed"]
    # Each value's JSON once per axis; a run's text joins its values' pieces in sorted-key order.
    order = sorted(range(len(names)), key=lambda i: names[i])
    axes = []
    for h in names:
        values = [int(v) if h == "seed" else v for v in spec.grid.values(h)]
        axes.append([(v, f'{json.dumps(h)}:{_json(v)}') for v in values])
    base = len(HYPERPARAMETERS) - 1
    runs = []
    for combo in _combinations(axes, names, spec.grid.tie):
        text = head + ",".join(combo[i][1] for i in order) + tail
        run = hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]
        values = [value for value, _ in combo]
        runs.append(RunConfig(run, *values[:base], values[-1], extra=tuple(zip(extra, values[base:-1]))))
    return runs + refined_runs(spec)


def refined_runs(spec: SweepSpec) -> list[RunConfig]:
    """The runs the recorded refinement rounds added (spec_refine.py): each point with every
    seed of the grid, the axes it leaves out at the grid's single value; ids as any run's."""
    if spec.refine is None or not spec.refine.points:
        return []
    extra = [name for name, _ in spec.grid.extra]
    shared = recipe(spec)  # once: run_id would dump the spec again for every run
    runs = []
    for points in spec.refine.points:
        for point in points:
            values = dict(point)
            for seed in spec.grid.seed:
                hp = {h: values.get(h, spec.grid.values(h)[0]) for h in HYPERPARAMETERS[:-1]}
                extras = tuple((name, values.get(name, spec.grid.values(name)[0])) for name in extra)
                hyperparameters = {**hp, "seed": int(seed), **dict(extras)}
                run = _digest({"recipe": shared, "hyperparameters": hyperparameters})
                runs.append(RunConfig(run, **hp, seed=int(seed), extra=extras))
    return runs


def _combinations(axes: list[list], names: list[str], tie: tuple[tuple[str, ...], ...]):
    """The product of the axes, except that the axes of a tied group move together (their i-th
    values in one combination), in the product's order."""
    if not tie:
        return itertools.product(*axes)
    leader = {}
    for group in tie:
        positions = sorted(names.index(axis) for axis in group)
        leader.update({position: positions[0] for position in positions})
    free = [i for i in range(len(names)) if leader.get(i, i) == i]
    slot = {i: free.index(leader.get(i, i)) for i in range(len(names))}
    return ([axes[i][picked[slot[i]]] for i in range(len(names))]
            for picked in itertools.product(*(range(len(axes[i])) for i in free)))


def count(spec: SweepSpec) -> int:
    """How many runs the grid (and the recorded refinement rounds) has, without expanding it."""
    return spec.grid.size() + (spec.refine.runs_added(len(spec.grid.seed)) if spec.refine else 0)


# Pack size caps. On CPU, packs of ~8 beat both one run per trial and huge packs (DESIGN.md
# section 3: the batched matmuls stop paying once they outgrow the cache); a GPU wants hundreds.
CPU_PACK_CAP = 8
GPU_PACK_CAP = 256
# Parameters (all runs) one pack may hold: bounds memory for big models.
CPU_PACK_PARAMETERS = 20_000_000
GPU_PACK_PARAMETERS = 500_000_000


def auto_pack_size(n_runs: int, parallel_slots: int, on_gpu: bool, parameters_per_run: int) -> int:
    """Runs per pack: packs as big as the device and the model size allow, in a number that
    keeps every trial slot busy to the end."""
    cap = GPU_PACK_CAP if on_gpu else CPU_PACK_CAP
    budget = GPU_PACK_PARAMETERS if on_gpu else CPU_PACK_PARAMETERS
    cap = min(cap, max(1, budget // max(1, parameters_per_run)))
    slots = max(1, parallel_slots)
    # As few packs as the cap allows, rounded up to a multiple of the slots so that the last wave
    # of trials is not half idle (24 runs on 2 slots: 4 packs of 6, not 3 of 8), then sized evenly.
    packs = math.ceil(math.ceil(n_runs / cap) / slots) * slots
    return max(1, math.ceil(n_runs / packs)) if packs else 1  # no runs left (a finished sweep's dry run)


def pack(runs: list[RunConfig], size: int = 1) -> list[Pack]:
    """Group runs into packs of at most ``size``, keeping expansion order within each group of
    runs with the same field-axis values (the same variant of the spec: the same shapes).

    Runs that differ only in per-run values (the hyperparameters, stage fields, intervention
    strengths) can share a pack; the pack id is the hash of its run ids.
    """
    if size < 1:
        raise ValueError(f"pack size must be >= 1, got {size}")
    groups: dict[tuple, list[RunConfig]] = {}
    for run in runs:
        groups.setdefault(run.field_values(), []).append(run)
    packs = []
    for group in groups.values():
        for start in range(0, len(group), size):
            members = tuple(group[start : start + size])
            packs.append(Pack(pack_id=_digest([r.run_id for r in members]), runs=members))
    return packs
