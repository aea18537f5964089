"""The sweep spec: frozen dataclasses, loaded from YAML and validated before any compute.

A spec names a task, a model, a training recipe, a grid of hyperparameters and the phase
criteria. ``load_spec`` turns a YAML file into a :class:`SweepSpec` or raises :class:`SpecError`
whose message is one line naming the field and the fix (the CLI prints it and exits 2).
Unknown keys are errors: a typo must never silently fall back to a default.

The task and model sections are typed: each task and model has its own spec class (its
parameters, defaults and checks), beside its implementation, listed in ``grokgrid.tasks.TASKS``
and ``grokgrid.models.MODELS``; this module picks the class a section names.

The pieces with a concept of their own live beside it: ``spec_stages`` (the ``stages:`` list),
``spec_interventions`` (Grokfast and the perturbation), ``spec_fields`` (task, model and
training fields as grid axes), ``spec_axes`` (one axis' values, a hyperparameter's checks) and
``spec_checks`` (the one-value checks and SpecError); this module assembles the spec from them.

Only the standard library and PyYAML are imported here, and by the task and model spec classes
(DESIGN.md section 2): status, classify and report read specs without torch.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from grokgrid import expectations
from grokgrid import spec_checks as check
from grokgrid import spec_fields, spec_interventions
from grokgrid.spec_axes import MAX_AXIS_VALUES, axis_values, check_hyperparameter  # noqa: F401 - MAX_AXIS_VALUES: part of spec's API
from grokgrid.spec_interventions import (  # noqa: F401 - part of spec's API
    GROKFAST_FILTERS, GROKFAST_LAMB, INTERVENTION_AXES, PERTURBABLE_MODELS, GrokfastSpec, PerturbationSpec)
from grokgrid.spec_refine import RefineSpec, parse_refine
from grokgrid.spec_stages import (  # noqa: F401 - part of spec's API
    FIRST_STAGE, RESERVED_STAGE_NAMES, STAGE_FIELDS, StageSpec, check_stage_value, parse_stages)
from grokgrid.criteria import PhaseCriteria, written_fields
from grokgrid.expectations import Expectation
from grokgrid.models import MODELS as MODEL_KINDS
from grokgrid.models import ModelSpec
from grokgrid.models.spec_base import ACTIVATION_NAMES as ACTIVATIONS  # noqa: F401 - part of spec's API
from grokgrid.models.toy_spec import ToySpec
from grokgrid.spec_checks import SpecError
from grokgrid.spec_kinds import Kind
from grokgrid.spec_yaml import parse_yaml, read_spec_file  # noqa: F401 - parse_yaml: part of spec's API (folder.py)
from grokgrid.tasks import TASKS as TASK_KINDS
from grokgrid.tasks import TaskSpec
from grokgrid.tasks.spec_base import LOSSES  # noqa: F401 - part of spec's API
from grokgrid.tasks.toy_addition_spec import ToyAdditionSpec


# The hyperparameters a grid may sweep, in the order runs are expanded and reported.
# repr_* act on the representation (embedding) parameters, decoder_* on the rest (Liu et al.).
HYPERPARAMETERS = ("repr_lr", "decoder_lr", "repr_wd", "decoder_wd", "init_scale", "train_fraction", "seed")

# The task and model kinds a spec may name (each kind's spec class lives beside its
# implementation, in grokgrid/tasks/ and grokgrid/models/), and every key their sections know.
TASKS = tuple(TASK_KINDS)
MODELS = tuple(MODEL_KINDS)
TASK_KEYS = tuple(dict.fromkeys(["name", *(key for kind in TASK_KINDS.values() for key in kind.parameters())]))
MODEL_KEYS = tuple(dict.fromkeys(["name", *(key for kind in MODEL_KINDS.values() for key in kind.parameters())]))
OPTIMIZERS = ("adamw", "adam", "sgd")
PRECISIONS = ("float32", "float64")
MAX_EXAMPLES = 100_000_000  # a task's examples (every run of a pack holds them all)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class EarlyStopSpec:
    """Phase-aware early stop: a run leaves its pack once train and val accuracy have both been
    >= threshold for ``patience`` consecutive logged steps (its phase is decided)."""

    threshold: float = 0.99
    patience: int = 10


@dataclass(frozen=True)
class LogScheduleSpec:
    """Logged steps: every ``eval_every`` up to ``dense_until``, then ``per_decade`` steps per
    factor of 10 (geometric), so that a 1e5-step run logs hundreds of rows, not thousands."""

    dense_until: int = 1000
    per_decade: int = 20


@dataclass(frozen=True)
class TrainingSpec:
    steps: int = 5000
    eval_every: int = 10
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    precision: str = "float32"
    early_stop: EarlyStopSpec | None = None  # None: every run trains all its steps
    log_schedule: LogScheduleSpec | None = None  # None: log every eval_every steps
    batch_size: int | None = None  # None: full batch; else each run draws its own random batch per step
    warmup_steps: int = 0  # linear lr warm-up over the first steps (Power, Nanda: 10)
    # Grokking interventions (issue 17); None / False: off, and left out of dumps and run ids.
    grokfast: GrokfastSpec | None = None
    perturbation: PerturbationSpec | None = None
    orthogonal_gradients: bool = False  # Prieto et al.'s ⊥Grad: project each gradient off its parameter
    # Adam(W) through torch's fused kernels (optim.py): faster on a CPU, float32 rounding differs.
    fused_optimizer: bool = False


# Training fields added after runs were made, and their "off" value: off, a field is left out
# of the dumped spec (and grid.recipe leaves it out of run ids), so older specs read as before.
TRAINING_ADDED_LATER = {"grokfast": None, "perturbation": None, "orthogonal_gradients": False, "fused_optimizer": False}


@dataclass(frozen=True)
class GridSpec:
    """Values of each hyperparameter; the runs are their Cartesian product.

    ``extra``: axes beyond the seven hyperparameters, as (dotted name, values) pairs in the order
    written: a stage field (``shrink.train_subset``), an intervention's strength
    (``training.grokfast.lamb``), or a task, model or training field (``task.p``, spec_fields.py).
    Runs carry their values in ``RunConfig.extra``; an empty ``extra`` leaves run ids and the
    dumped spec as before it existed.
    """

    repr_lr: tuple[float, ...] = (1e-3,)
    decoder_lr: tuple[float, ...] = (1e-4,)
    repr_wd: tuple[float, ...] = (0.0,)
    decoder_wd: tuple[float, ...] = (0.0,)
    init_scale: tuple[float, ...] = (1.0,)
    train_fraction: tuple[float, ...] = (0.8,)
    seed: tuple[int, ...] = (0,)
    extra: tuple[tuple[str, tuple[float, ...]], ...] = ()
    # Groups of axes whose values go together (the i-th value of each), not in every combination:
    # `tie: [[repr_wd, decoder_wd]]` sweeps one weight decay on every parameter. Runs are those
    # of the full product with equal value positions in each group, so they keep their ids.
    tie: tuple[tuple[str, ...], ...] = ()

    def axes(self) -> tuple[str, ...]:
        """Every axis: the seven hyperparameters, then the extra ones."""
        return HYPERPARAMETERS + tuple(name for name, _ in self.extra)

    def values(self, axis: str) -> tuple:
        """The values of one axis (a hyperparameter or an extra axis); KeyError if none."""
        if axis in HYPERPARAMETERS:
            return getattr(self, axis)
        for name, values in self.extra:
            if name == axis:
                return values
        raise KeyError(axis)

    def swept(self) -> tuple[str, ...]:
        """Axes with more than one value (seed excluded: it is aggregated over)."""
        return tuple(h for h in self.axes() if h != "seed" and len(self.values(h)) > 1)

    def size(self) -> int:
        tied = {axis for group in self.tie for axis in group}
        return (math.prod(len(self.values(h)) for h in self.axes() if h not in tied)
                * math.prod(len(self.values(group[0])) for group in self.tie))

    def refinable(self) -> tuple[str, ...]:
        """The axes a refinement round may place new values on: numeric per-run axes (not the
        seed, nor a task, model or training field, which may change shapes, nor a tied axis,
        whose partners would not follow)."""
        tied = {axis for group in self.tie for axis in group}
        return tuple(a for a in self.axes() if a != "seed" and not spec_fields.is_field_axis(a) and a not in tied)

    def fields(self) -> tuple[tuple[str, tuple], ...]:
        """The field axes (task, model and training fields; spec_fields.py) and their values:
        the axes whose runs train under different variants of the spec, in different packs."""
        return tuple((name, values) for name, values in self.extra if spec_fields.is_field_axis(name))


# Liu et al.'s phase criteria and the details beside them: one definition, shared with phases.py.
PhasesSpec = PhaseCriteria


@dataclass(frozen=True)
class ResourcesSpec:
    """How the sweep executes. Nothing here changes a run's results, so nothing here enters
    its run id: the same runs can be repacked or rescheduled freely."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    pack_size: int | str = "auto"  # runs trained together in one trial; "auto": by device and grid
    flush_every: int = 1000  # steps between Parquet parts: bounds what a crash can lose
    # Steps between pack checkpoints (taken at the first logged step at or after each multiple):
    # an interrupted pack resumes from its last one, so this bounds the steps a crash recomputes.
    checkpoint_every: int = 1000
    max_failures: int = 2  # retries of a failed trial (lost node, crash), each from its checkpoint; -1: unlimited


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str = ""
    task: TaskSpec = field(default_factory=ToyAdditionSpec)
    model: ModelSpec = field(default_factory=ToySpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    phases: PhasesSpec = field(default_factory=PhasesSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    expect: tuple[Expectation, ...] = ()  # the paper's claims (expectations.py); never change training
    stages: tuple[StageSpec, ...] = ()  # stages after the first (training.steps); none: one stage
    refine: RefineSpec | None = None  # boundary refinement rounds (spec_refine.py); none: the grid alone

    def with_round(self, points: list[dict[str, float]]) -> SweepSpec:
        """The spec with one more refinement round recorded (its points, possibly none)."""
        assert self.refine is not None
        axes = [a for a in self.grid.axes() if a != "seed"]
        ordered = tuple(tuple((a, float(p[a])) for a in axes if a in p) for p in points)
        return dataclasses.replace(self, refine=dataclasses.replace(self.refine, points=self.refine.points + (ordered,)))

    @property
    def total_steps(self) -> int:
        """A run's steps over all its stages (the step counter is global across stages)."""
        return self.training.steps + sum(stage.steps for stage in self.stages)

    def for_values(self, values: Mapping[str, Any]) -> SweepSpec:
        """The variant of the spec with these field-axis values (``{"task.p": 97}``): those
        fields set, and those axes off its grid (what a spec fixing them would be)."""
        if not values:
            return self
        grid = dataclasses.replace(self.grid, extra=tuple((n, v) for n, v in self.grid.extra if n not in values))
        return dataclasses.replace(spec_fields.apply(self, values), grid=grid)

    def variants(self) -> list[SweepSpec]:
        """One spec per combination of the field axes' values (just this spec when there are none)."""
        axes = self.grid.fields()
        return [self.for_values(dict(zip((n for n, _ in axes), combo))) for combo in itertools.product(*(v for _, v in axes))]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) that ``spec_from_dict`` turns back into an equal spec.

        The task and model sections hold their kind's name and own parameters only, in the
        kind's field order: run ids are a hash of this, and dump_spec writes it out. The
        ``expect`` items are written as in a spec file, and left out when there are none (so a
        spec without claims dumps as it did before they existed).
        """
        data = _plain(dataclasses.asdict(dataclasses.replace(self, expect=(), stages=(), refine=None)))
        del data["expect"], data["stages"], data["refine"]
        # Extra grid axes are written as in a spec file (`shrink.train_subset: [...]`), and only
        # when there are some, so that a spec without stages dumps as it did before them.
        del data["grid"]["extra"], data["grid"]["tie"]
        data["grid"].update({name: _plain(list(values)) for name, values in self.grid.extra})
        if self.grid.tie:  # written only when used, so that other specs dump (and hash) as before
            data["grid"]["tie"] = [list(group) for group in self.grid.tie]
        if self.stages:
            data["stages"] = [_plain(stage.written()) for stage in self.stages]
        data["task"], data["model"] = _plain(self.task.written()), _plain(self.model.written())
        data["training"] = _training_written(self.training)
        for axis, _ in self.grid.fields():  # a swept field is the grid's: its section leaves it out
            section, _, name = axis.partition(".")
            data[section].pop(name, None)
        data["phases"] = written_fields(self.phases)  # a criterion added later: only when set
        if self.expect:
            data["expect"] = [item.to_data() for item in self.expect]
        if self.refine is not None:  # only when set: a spec without it dumps (and hashes) as before
            data["refine"] = _plain(self.refine.written())
        return data


def _training_written(training: TrainingSpec) -> dict[str, Any]:
    """The training section as written: the added-later fields only when on."""
    data = _plain(dataclasses.asdict(training))
    for key, off in TRAINING_ADDED_LATER.items():
        value = getattr(training, key)
        if value == off:
            del data[key]
        elif hasattr(value, "written"):
            data[key] = _plain(value.written())
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- sections


def _kind(section: str, data: Mapping[str, Any], kinds: Mapping[str, type[Kind]], known: tuple[str, ...], default: str) -> Any:
    """The task or model section: its ``name`` picks the kind, whose class reads the parameters."""
    check.reject_unknown(section, data, known)
    name = check.choice(f"{section}.name", data.get("name", default), tuple(kinds))
    kind = kinds[name]
    check.only_parameters_of(section, name, data, kind.parameters())
    return kind.from_data(data)


def _task(data: Mapping[str, Any]) -> TaskSpec:
    return _kind("task", data, TASK_KINDS, TASK_KEYS, ToyAdditionSpec.name)


def _model(data: Mapping[str, Any]) -> ModelSpec:
    return _kind("model", data, MODEL_KINDS, MODEL_KEYS, ToySpec.name)


def _training(data: Mapping[str, Any]) -> TrainingSpec:
    check.reject_unknown("training", data, TrainingSpec)
    d = TrainingSpec()
    betas = data.get("betas", list(d.betas))
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise SpecError("training.betas", f"expected two numbers, got {betas!r}", "write e.g. [0.9, 0.999]")
    beta_values = tuple(check.number(f"training.betas[{i}]", b) for i, b in enumerate(betas))
    for i, b in enumerate(beta_values):
        if not 0 <= b < 1:
            raise SpecError(f"training.betas[{i}]", f"must be in [0, 1), got {b:g}", "use e.g. 0.9 or 0.999")
    steps = check.integer("training.steps", data.get("steps", d.steps))
    check.at_least("training.steps", steps, 1)
    # Left out, eval_every is the default 10, or every step of a run shorter than that (which logs
    # the same steps, 0 and the last); given, it must fit in the run (else only 0 and the last log).
    eval_every = check.integer("training.eval_every", data["eval_every"]) if "eval_every" in data else min(d.eval_every, steps)
    check.at_least("training.eval_every", eval_every, 1)
    if eval_every > steps:
        raise SpecError(
            "training.eval_every",
            f"eval_every {eval_every} exceeds training.steps {steps} (only steps 0 and {steps} would be logged)",
            "use a value <= steps",
        )
    training = TrainingSpec(
        steps=steps,
        eval_every=eval_every,
        optimizer=check.choice("training.optimizer", data.get("optimizer", d.optimizer), OPTIMIZERS),
        betas=beta_values,  # type: ignore[arg-type]
        eps=check.number("training.eps", data.get("eps", d.eps)),
        precision=check.choice("training.precision", data.get("precision", d.precision), PRECISIONS),
        early_stop=_early_stop(data.get("early_stop", d.early_stop)),
        log_schedule=_log_schedule(data.get("log_schedule", d.log_schedule)),
        batch_size=None if data.get("batch_size") is None else check.integer("training.batch_size", data["batch_size"]),
        warmup_steps=check.integer("training.warmup_steps", data.get("warmup_steps", d.warmup_steps)),
        grokfast=spec_interventions.parse_grokfast(data.get("grokfast")),
        perturbation=spec_interventions.parse_perturbation(data.get("perturbation")),
        orthogonal_gradients=check.boolean("training.orthogonal_gradients", data.get("orthogonal_gradients", False)),
        fused_optimizer=check.boolean("training.fused_optimizer", data.get("fused_optimizer", False)),
    )
    if training.batch_size is not None:
        check.at_least("training.batch_size", training.batch_size, 1)
    check.at_least("training.warmup_steps", training.warmup_steps, 0)
    check.at_least("training.eps", training.eps, 0, strict=True)
    return training


def _log_schedule(raw: Any) -> LogScheduleSpec | None:
    if raw is None or raw is False:
        return None
    data = check.mapping("training.log_schedule", raw)
    check.reject_unknown("training.log_schedule", data, LogScheduleSpec)
    d = LogScheduleSpec()
    schedule = LogScheduleSpec(
        dense_until=check.integer("training.log_schedule.dense_until", data.get("dense_until", d.dense_until)),
        per_decade=check.integer("training.log_schedule.per_decade", data.get("per_decade", d.per_decade)),
    )
    check.at_least("training.log_schedule.dense_until", schedule.dense_until, 1)
    check.at_least("training.log_schedule.per_decade", schedule.per_decade, 1)
    return schedule


def _early_stop(raw: Any) -> EarlyStopSpec | None:
    if raw is None or raw is False:
        return None
    data = check.mapping("training.early_stop", raw)
    check.reject_unknown("training.early_stop", data, EarlyStopSpec)
    d = EarlyStopSpec()
    threshold = check.number("training.early_stop.threshold", data.get("threshold", d.threshold))
    if not 0 < threshold <= 1:
        raise SpecError("training.early_stop.threshold", f"must be in (0, 1], got {threshold:g}", "use an accuracy such as 0.99")
    patience = check.integer("training.early_stop.patience", data.get("patience", d.patience))
    check.at_least("training.early_stop.patience", patience, 1)
    return EarlyStopSpec(threshold=threshold, patience=patience)


def _grid(data: Mapping[str, Any]) -> GridSpec:
    """The seven hyperparameters' axes; a dotted key (an extra axis) is read by _extra_axes,
    once the stages it names are known."""
    check.reject_unknown("grid", {k: v for k, v in data.items() if "." not in k}, (*HYPERPARAMETERS, "tie"))
    d = GridSpec()
    axes: dict[str, tuple] = {}
    for name in HYPERPARAMETERS:
        where = f"grid.{name}"
        values = axis_values(where, data[name]) if name in data else list(getattr(d, name))
        if len(set(values)) != len(values):
            raise SpecError(where, f"repeated values {values}", "list each value once")
        for i, v in enumerate(values):
            at = f"{where}[{i}]" if len(values) > 1 or isinstance(data.get(name), (list, tuple)) else where
            check_hyperparameter(at, name, v)
        axes[name] = tuple(int(v) for v in values) if name == "seed" else tuple(values)
    return GridSpec(**axes)


def _phases(data: Mapping[str, Any]) -> PhasesSpec:
    check.reject_unknown("phases", data, PhasesSpec)
    d = PhasesSpec()
    threshold = check.number("phases.threshold", data.get("threshold", d.threshold))
    if not 0 < threshold <= 1:
        raise SpecError("phases.threshold", f"must be in (0, 1], got {threshold:g}", "use an accuracy such as 0.9")
    gap = check.integer("phases.gap", data.get("gap", d.gap))
    check.at_least("phases.gap", gap, 0)
    budget = data.get("budget", d.budget)
    if budget is not None:
        budget = check.integer("phases.budget", budget)
        check.at_least("phases.budget", budget, 1)
    fractions = {}
    for key, low_open in (("semi_min", True), ("semi_max", True), ("drop_min", False), ("plateau_window", True),
                          ("plateau_rise_max", False)):
        value = check.number(f"phases.{key}", data.get(key, getattr(d, key)))
        if not ((0 < value) if low_open else (0 <= value)) or value > 1:
            raise SpecError(f"phases.{key}", f"must be in {'(0' if low_open else '[0'}, 1], got {value:g}", "use a fraction such as 0.5")
        fractions[key] = value
    if fractions["semi_min"] >= fractions["semi_max"]:
        raise SpecError("phases.semi_min", f"must be below semi_max {fractions['semi_max']:g}", "lower semi_min or raise semi_max")
    return PhasesSpec(threshold=threshold, gap=gap, budget=budget, **fractions)


def _resources(data: Mapping[str, Any]) -> ResourcesSpec:
    check.reject_unknown("resources", data, ResourcesSpec)
    d = ResourcesSpec()
    cpus = check.number("resources.cpus_per_trial", data.get("cpus_per_trial", d.cpus_per_trial))
    gpus = check.number("resources.gpus_per_trial", data.get("gpus_per_trial", d.gpus_per_trial))
    check.at_least("resources.cpus_per_trial", cpus, 0, strict=True)
    check.at_least("resources.gpus_per_trial", gpus, 0)
    concurrent = data.get("max_concurrent", d.max_concurrent)
    if concurrent is not None:
        concurrent = check.integer("resources.max_concurrent", concurrent)
        check.at_least("resources.max_concurrent", concurrent, 1)
    pack_size = data.get("pack_size", d.pack_size)
    if pack_size != "auto":
        pack_size = check.integer("resources.pack_size", pack_size)
        check.at_least("resources.pack_size", pack_size, 1)
    flush_every = check.integer("resources.flush_every", data.get("flush_every", d.flush_every))
    check.at_least("resources.flush_every", flush_every, 1)
    checkpoint_every = check.integer("resources.checkpoint_every", data.get("checkpoint_every", d.checkpoint_every))
    check.at_least("resources.checkpoint_every", checkpoint_every, 1)
    max_failures = check.integer("resources.max_failures", data.get("max_failures", d.max_failures))
    if max_failures < -1:
        raise SpecError("resources.max_failures", f"must be >= -1, got {max_failures}", "use a count of retries >= 0, or -1 for unlimited")
    return ResourcesSpec(
        cpus_per_trial=cpus,
        gpus_per_trial=gpus,
        max_concurrent=concurrent,
        pack_size=pack_size,
        flush_every=flush_every,
        checkpoint_every=checkpoint_every,
        max_failures=max_failures,
    )


def _extra_axes(data: Mapping[str, Any], stages: tuple[StageSpec, ...]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """The grid's dotted keys: `<stage>.<field>` sweeps a stage field (train_subset, an lr or a wd)."""
    axes = []
    for key, raw in data.items():
        if "." not in key or spec_fields.is_field_axis(key):  # field axes: _with_field_axes
            continue
        where = f"grid.{check.shown_key(key)}"
        if key.startswith("training."):
            axes.append((key, spec_interventions.intervention_axis(where, key, raw)))
            continue
        stage_name, _, field_name = key.partition(".")
        stage = next((s for s in stages if s.name == stage_name), None)
        if stage is None:
            known = ", ".join(s.name for s in stages) or "none"
            raise SpecError(where, f"no stage named {stage_name!r} (stages: {known})",
                            "name a stage of 'stages:' as '<stage>.<field>', e.g. shrink.train_subset")
        if field_name not in STAGE_FIELDS:
            raise SpecError(where, f"{field_name!r} cannot be a grid axis",
                            f"sweep one of {', '.join(STAGE_FIELDS)} (a stage's steps are shared by every run)")
        if getattr(stage, field_name) is not None:
            raise SpecError(where, f"stage {stage_name} also sets {field_name}", f"set it in one place: remove stages[].{field_name} or the axis")
        values = axis_values(where, raw)
        if len(set(values)) != len(values):
            raise SpecError(where, f"repeated values {values}", "list each value once")
        for i, v in enumerate(values):
            check_stage_value(f"{where}[{i}]" if isinstance(raw, (list, tuple)) else where, field_name, v)
        axes.append((key, tuple(values)))
    return tuple(axes)


def _refine(raw: Any, grid: GridSpec) -> RefineSpec | None:
    """``refine:``, against the grid: a refined axis is one of GridSpec.refinable; a recorded
    point's hyperparameter values pass the grid's own checks."""
    axes = tuple(a for a in grid.axes() if a != "seed")
    refine = parse_refine(raw, axes, {a: grid.values(a) for a in axes}, grid.refinable())
    needed = [a for a in axes if len(grid.values(a)) > 1]  # a point sits in one slice of every swept axis
    for r, points in enumerate(refine.points if refine else ()):
        for i, point in enumerate(points):
            missing = [a for a in needed if a not in dict(point)]
            if missing:
                raise SpecError(f"refine.points[{r}][{i}]", f"no value for {missing[0]}", "give every swept axis a value")
            for axis, value in point:
                if axis in HYPERPARAMETERS:
                    check_hyperparameter(f"refine.points[{r}][{i}].{axis}", axis, value)
    return refine


def _tie(raw: Any, grid: GridSpec) -> tuple[tuple[str, ...], ...]:
    """``grid.tie``: lists of axes whose values are zipped (equal lengths, each axis in one group)."""
    if raw is None:
        return ()
    example = "write e.g. tie: [[repr_wd, decoder_wd]]"
    if not isinstance(raw, list):
        raise SpecError("grid.tie", f"expected a list of axis lists, got {type(raw).__name__}", example)
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for i, group in enumerate(raw):
        where = f"grid.tie[{i}]"
        if not isinstance(group, list) or len(group) < 2 or not all(isinstance(a, str) for a in group):
            raise SpecError(where, f"expected a list of at least two axis names, got {group!r}", example)
        for axis in group:
            if axis not in grid.axes() or axis == "seed":
                raise SpecError(where, f"{check.shown_key(axis)!r} is not an axis of the grid one can tie",
                                "name axes the grid sweeps (not seed), e.g. repr_wd and decoder_wd")
            if axis in seen:
                raise SpecError(where, f"{axis} is tied twice", "put each axis in one group")
            seen.add(axis)
        lengths = {axis: len(grid.values(axis)) for axis in group}
        if len(set(lengths.values())) != 1:
            raise SpecError(where, f"the tied axes have different numbers of values ({', '.join(f'{a}: {n}' for a, n in lengths.items())})",
                            "give each tied axis as many values (the i-th values go together)")
        groups.append(tuple(group))
    return tuple(groups)


_SECTIONS = {
    "task": _task,
    "model": _model,
    "training": _training,
    "grid": _grid,
    "phases": _phases,
    "resources": _resources,
}


def spec_from_dict(data: Any) -> SweepSpec:
    """Validate plain data (as parsed from YAML) into a SweepSpec; raises SpecError."""
    data = check.mapping("spec", data)
    check.reject_unknown("", data, SweepSpec)
    grid = data.get("grid")
    if isinstance(grid, Mapping) and spec_fields.field_keys(grid):
        return _with_field_axes(data, grid)
    if "name" not in data:
        raise SpecError("name", "missing", "add 'name: <sweep name>' (it names the results folder)")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SpecError("name", f"invalid sweep name {name!r}", "use letters, digits, '_', '-' or '.' (at most 64)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", f"expected text, got {type(description).__name__}", "quote it")
    sections = {key: build(check.mapping(key, data.get(key))) for key, build in _SECTIONS.items()}
    stages = parse_stages(data.get("stages"))
    grid_data = check.mapping("grid", data.get("grid"))
    sections["grid"] = dataclasses.replace(sections["grid"], extra=_extra_axes(grid_data, stages))
    sections["grid"] = dataclasses.replace(sections["grid"], tie=_tie(grid_data.get("tie"), sections["grid"]))
    refine = _refine(data.get("refine"), sections["grid"])
    sections["training"] = spec_interventions.resolve(sections["training"], sections["grid"].extra)
    expect = expectations.parse(data.get("expect"), sections["grid"].axes())
    spec = SweepSpec(name=name, description=description, **sections, expect=expect, stages=stages, refine=refine)
    _check_consistency(spec)
    return spec


def _with_field_axes(data: Mapping[str, Any], grid: Mapping[str, Any]) -> SweepSpec:
    """A spec whose grid sweeps task, model or training fields (spec_fields.py): every variant
    is read as a spec of its own (so each value meets a fixed field's checks), and the spec is
    the first variant with the field axes back on its grid, in the order written."""
    keys = spec_fields.field_keys(grid)
    kinds = {}
    for section, registry, default in (("task", TASK_KINDS, ToyAdditionSpec.name), ("model", MODEL_KINDS, ToySpec.name)):
        name = check.mapping(section, data.get(section)).get("name", default)
        kinds[section] = (name, registry[name].parameters()) if isinstance(name, str) and name in registry else None
    written = []
    for key in keys:
        spec_fields.check_field(key, data, kinds)
        written.append((key, spec_fields.written_values(f"grid.{key}", grid[key], axis_values)))
    spec_fields.check_count(written)
    parsed: list[list[Any]] = [[None] * len(values) for _, values in written]
    first = None
    for combo in itertools.product(*(range(len(values)) for _, values in written)):
        picked = [(axis, values[i], i) for (axis, values), i in zip(written, combo)]
        try:
            variant = spec_from_dict(spec_fields.variant_data(data, [(axis, value) for axis, value, _ in picked]))
        except SpecError as exc:
            raise spec_fields.blame(exc, picked) from None
        for k, (axis, _, i) in enumerate(picked):
            parsed[k][i] = spec_fields.value_of(variant, axis)
        first = first or variant
    assert first is not None  # every axis has a value (written_values)
    fields = {}
    for (axis, _), values in zip(written, parsed):
        if len(set(values)) != len(values):
            raise SpecError(f"grid.{axis}", f"repeated values {_plain(values)}", "list each value once")
        section, _, name = axis.partition(".")
        if section == "task" and name in first.task.locations():
            raise SpecError(f"grid.{axis}", f"task.{name} says where the task's files are, not what they hold",
                            "set it in the task section")
        fields[axis] = tuple(values)
    # Field and other extra axes in the order the grid writes them.
    others = dict(first.grid.extra)
    extra = tuple((key, fields[key] if key in fields else others[key]) for key in grid if key in fields or key in others)
    full = dataclasses.replace(first.grid, extra=extra)
    full = dataclasses.replace(full, tie=_tie(grid.get("tie"), full))
    spec = dataclasses.replace(first, grid=full, refine=_refine(data.get("refine"), full))
    spec = dataclasses.replace(spec, expect=expectations.parse(data.get("expect"), spec.grid.axes()))
    for i, item in enumerate(spec.expect):
        _check_expectation_axes(f"expect[{i}]", item, spec.grid)
    return spec


def _check_consistency(spec: SweepSpec) -> None:
    """Checks that span sections."""
    if spec.model.name not in spec.task.models:
        raise SpecError(
            "model.name",
            f"model {spec.model.name} does not read task {spec.task.name}'s inputs",
            f"use one of {', '.join(spec.task.models)}",
        )
    if spec.training.perturbation is not None and spec.model.name not in PERTURBABLE_MODELS:
        raise SpecError("training.perturbation", f"model {spec.model.name} exposes no continuous input to perturb",
                        f"use model {' or '.join(PERTURBABLE_MODELS)}, or remove the perturbation")
    examples = spec.task.n_examples
    if examples > MAX_EXAMPLES:  # a typo (p: 1e9): every run of a pack holds them all, never fitting memory
        shown = f"{examples:,}" if examples < 10**12 else f"about 1e{len(str(int(examples))) - 1}"  # no float: it may overflow
        raise SpecError("task", f"task {spec.task.name} would have {shown} examples",
                        f"make it smaller (at most {MAX_EXAMPLES:,} examples, e.g. p <= 10,000)")
    for i, fraction in enumerate(spec.grid.train_fraction):
        n_train = round(fraction * examples)
        if n_train < 1 or n_train >= examples:
            raise SpecError(
                f"grid.train_fraction[{i}]",
                f"{fraction:g} of {examples} examples leaves an empty train or validation set",
                "use a fraction that keeps at least one example on each side",
            )
    spec.task.check_splits(spec.grid.train_fraction, spec.grid.seed)
    for i, item in enumerate(spec.expect):
        _check_expectation_axes(f"expect[{i}]", item, spec.grid)
    if spec.phases.budget is not None and spec.phases.budget > spec.total_steps:
        steps = f"training.steps {spec.training.steps}" if not spec.stages else f"the {spec.total_steps} steps of all stages"
        raise SpecError("phases.budget", f"budget {spec.phases.budget} exceeds {steps}", "lower the budget or train longer")
    _check_subsets_keep_examples(spec)
    rule = spec.training.early_stop
    if rule is not None and rule.threshold < spec.phases.threshold:
        raise SpecError("training.early_stop.threshold",
                        f"{rule.threshold:g} is below phases.threshold {spec.phases.threshold:g}: runs would stop before their phase is decided",
                        f"use a threshold >= {spec.phases.threshold:g}")


def _check_subsets_keep_examples(spec: SweepSpec) -> None:
    """Every stage's training subset must keep at least one example, for every run: the
    smallest fraction and subsets of the grid give the smallest set (rounding is monotone)."""
    n = min(round(fraction * spec.task.n_examples) for fraction in spec.grid.train_fraction)
    for i, stage in enumerate(spec.stages):
        axis = f"{stage.name}.train_subset"
        subsets = spec.grid.values(axis) if axis in spec.grid.axes() else (stage.train_subset or 1.0,)
        n = round(min(subsets) * n)
        if n < 1:
            where = f"grid.{axis}" if axis in spec.grid.axes() else f"stages[{i}].train_subset"
            raise SpecError(where, f"{min(subsets):g} of the previous stage's training set keeps no example",
                            "use a larger subset or training fraction")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file; every problem is a SpecError (one line)."""
    return spec_from_dict(read_spec_file(Path(path)))


def _check_expectation_axes(where: str, item: Expectation, grid: GridSpec) -> None:
    """A claim must be about runs the grid has: its ``where`` (and a speedup's ``of`` and
    ``over``) picks grid values, and a trend runs along an axis the grid sweeps (a typo would
    otherwise check nothing)."""
    _check_selection(f"{where}.where", item.where, grid)
    if isinstance(item.check, expectations.SpeedupCheck):
        _check_selection(f"{where}.speedup.of", item.check.of, grid)
        _check_selection(f"{where}.speedup.over", item.check.over, grid)
    if isinstance(item.check, expectations.TrendCheck):
        _check_numeric_axis(f"{where}.trend.along", item.check.along, grid.values(item.check.along))
    if isinstance(item.check, expectations.TrendCheck) and len(grid.values(item.check.along)) < 2:
        raise SpecError(f"{where}.trend.along", f"grid.{item.check.along} has one value: there is no trend to see",
                        f"sweep {item.check.along} or claim a trend along a swept axis")


def _check_selection(where: str, selection: tuple, grid: GridSpec) -> None:
    """Each axis' listed values (or range) must pick values the grid has."""
    for axis, allowed in selection:
        values = grid.values(axis)
        if not _numeric(values) or not _numeric(allowed.values):
            _check_categorical_where(f"{where}.{axis}", axis, allowed, values)
            continue
        if allowed.values:
            missing = [v for v in allowed.values if not any(math.isclose(v, g, rel_tol=1e-9, abs_tol=1e-12) for g in values)]
            if missing:
                raise SpecError(f"{where}.{axis}", f"{missing[0]:g} is not a value of grid.{axis}",
                                f"use one of {', '.join(f'{g:g}' for g in values)}")
        elif not any((allowed.low is None or g >= allowed.low) and (allowed.high is None or g <= allowed.high) for g in values):
            raise SpecError(f"{where}.{axis}", "the range holds no value of the grid",
                            f"grid.{axis} is {', '.join(f'{g:g}' for g in values)}")


def _numeric(values: tuple) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _check_numeric_axis(where: str, axis: str, values: tuple) -> None:
    """A trend orders runs by number: a categorical axis (a loss, a layer list) has no order."""
    if not _numeric(values):
        raise SpecError(where, f"grid.{axis} is not numeric ({', '.join(str(spec_fields.shown(v)) for v in values)})",
                        "claim a trend along a numeric axis (select a category with 'where')")


def _check_categorical_where(where: str, axis: str, allowed: expectations.Range, values: tuple) -> None:
    """A categorical axis (or a non-number on a numeric one) is selected by listing grid values."""
    shown = [spec_fields.shown(g) for g in values]
    listing = ", ".join(str(g) for g in shown)
    if not allowed.values:
        raise SpecError(where, f"grid.{axis} is not numeric: a min/max range cannot select it", f"list values of {listing}")
    for v in allowed.values:
        if spec_fields.shown(v) not in shown:
            raise SpecError(where, f"{spec_fields.shown(v)} is not a value of grid.{axis}", f"use one of {listing}")


def dump_spec(spec: SweepSpec) -> str:
    """The spec as YAML text (what results/<sweep>/spec.yaml holds)."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
