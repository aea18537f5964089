"""The sweep spec: frozen dataclasses, loaded from YAML and validated before any compute.

A spec names a task, a model, a training recipe, a grid of hyperparameters and the phase
criteria. ``load_spec`` turns a YAML file into a :class:`SweepSpec` or raises :class:`SpecError`
whose message is one line naming the field and the fix (the CLI prints it and exits 2).
Unknown keys are errors: a typo must never silently fall back to a default.

Only the standard library and PyYAML are imported here (DESIGN.md section 2).
"""

from __future__ import annotations

import dataclasses
import math
import re
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from grokgrid.criteria import PhaseCriteria
from grokgrid.models.spec_base import ACTIVATION_NAMES


class SpecError(ValueError):
    """A spec problem, as one line: '<field>: <what is wrong>; <how to fix it>'."""

    def __init__(self, where: str, problem: str, fix: str):
        # One line whatever the input (a key with a newline is escaped where it is named).
        problem, fix = (" ".join(text.split()) for text in (problem, fix))
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}; {fix}")


# The hyperparameters a grid may sweep, in the order runs are expanded and reported.
# repr_* act on the representation (embedding) parameters, decoder_* on the rest (Liu et al.).
HYPERPARAMETERS = ("repr_lr", "decoder_lr", "repr_wd", "decoder_wd", "init_scale", "train_fraction", "seed")

# Each task's and each model's own parameters (the others' fields keep their defaults and are
# refused in a spec, so a typo such as `op` on the toy task is an error, not silently ignored).
TASK_PARAMETERS = {
    "toy_addition": ("p", "loss", "template_dim"),
    "modular": ("p", "op", "loss"),
    "permutation": ("n", "op", "loss"),
    "digits": ("loss",),
    "sparse_linear": ("n_samples", "dim", "sparsity", "data_seed"),
    "matrix_completion": ("dim", "rank", "data_seed", "tolerance"),
}
MODEL_PARAMETERS = {
    "toy": ("embed_dim", "hidden", "activation"),
    "mlp": ("embed_dim", "hidden", "activation", "bias"),
    "transformer": ("n_layers", "d_model", "n_heads", "d_mlp", "layer_norm", "activation", "with_op"),
    "diagonal": ("parametrization",),
    "factorized": ("width",),
}
# Which models read which tasks' inputs.
MODELS_FOR_TASK = {
    "toy_addition": ("toy", "mlp"),
    "modular": ("mlp", "transformer"),
    "permutation": ("mlp", "transformer"),
    "digits": ("mlp",),
    "sparse_linear": ("diagonal", "mlp"),
    "matrix_completion": ("factorized",),
}
TASKS = tuple(TASK_PARAMETERS)
MODELS = tuple(MODEL_PARAMETERS)
MODULAR_OPS = ("add", "sub", "mul", "div", "quad1", "quad2", "quad3", "cube1", "cube2", "mix1")
PERMUTATION_OPS = ("compose", "conjugate")
LOSSES = ("mse", "ce")
ACTIVATIONS = ACTIVATION_NAMES
OPTIMIZERS = ("adamw", "adam", "sgd")
PRECISIONS = ("float32", "float64")
MAX_AXIS_VALUES = 100_000  # values of one grid axis (a finer axis is a typo, not a phase diagram)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class TaskSpec:
    """The dataset. toy_addition: Liu's pairs i <= j < p, answer i + j; modular: Power's x op y
    mod p; permutation: S_n composition or conjugation; digits: sklearn's 8x8 digits (small
    MNIST); sparse_linear: Lyu's k-sparse linear teacher. loss mse regresses onto a template per
    class (random 30-d for the toy task as Liu, one-hot otherwise as Omnigrok)."""

    name: str = "toy_addition"
    p: int = 10
    op: str = "add"
    n: int = 5
    loss: str = "mse"
    template_dim: int = 30
    n_samples: int = 1000
    dim: int = 1000
    sparsity: int = 3
    data_seed: int = 0
    rank: int = 1
    tolerance: float = 0.1  # regression (matrix_completion): a prediction within this is "correct"


@dataclass(frozen=True)
class ModelSpec:
    """The network. toy: Liu's summed embeddings + MLP decoder; mlp: embeddings (or one-hot,
    embed_dim 0) concatenated, or raw features, then an MLP; transformer: decoder-only (Power /
    Nanda); diagonal: Lyu's diagonal linear net w = u*u - v*v."""

    name: str = "toy"
    embed_dim: int = 1
    hidden: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    bias: bool = True
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    layer_norm: bool = False
    with_op: bool = False
    parametrization: str = "squares"
    width: int = 97


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


@dataclass(frozen=True)
class GridSpec:
    """Values of each hyperparameter; the runs are their Cartesian product."""

    repr_lr: tuple[float, ...] = (1e-3,)
    decoder_lr: tuple[float, ...] = (1e-4,)
    repr_wd: tuple[float, ...] = (0.0,)
    decoder_wd: tuple[float, ...] = (0.0,)
    init_scale: tuple[float, ...] = (1.0,)
    train_fraction: tuple[float, ...] = (0.8,)
    seed: tuple[int, ...] = (0,)

    def swept(self) -> tuple[str, ...]:
        """Hyperparameters with more than one value (seed excluded: it is aggregated over)."""
        return tuple(h for h in HYPERPARAMETERS if h != "seed" and len(getattr(self, h)) > 1)

    def size(self) -> int:
        return math.prod(len(getattr(self, h)) for h in HYPERPARAMETERS)


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
    task: TaskSpec = field(default_factory=TaskSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    grid: GridSpec = field(default_factory=GridSpec)
    phases: PhasesSpec = field(default_factory=PhasesSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) that ``spec_from_dict`` turns back into an equal spec.

        The task and model sections keep only their kind's own parameters: the rest are unused
        defaults, and leaving them out keeps run ids (a hash of this) free of them.
        """
        data = _plain(dataclasses.asdict(self))
        for section, allowed in (("task", TASK_PARAMETERS), ("model", MODEL_PARAMETERS)):
            kind = data[section]["name"]
            data[section] = {k: v for k, v in data[section].items() if k == "name" or k in allowed[kind]}
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- scalar checks


def _number(where: str, value: Any) -> float:
    # YAML 1.1 reads "1e-3" (no dot) as a string: accept numeric strings, since that is what
    # a researcher means, but reject bools (YAML's yes/no) and anything else.
    if isinstance(value, bool):
        raise SpecError(where, f"expected a number, got {value!r}", "write a number such as 1e-3")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpecError(where, f"expected a number, got {value!r}", "write a number such as 1e-3") from None
    if not isinstance(value, (int, float)):
        raise SpecError(where, f"expected a number, got {type(value).__name__}", "write a number such as 1e-3")
    if not math.isfinite(value):
        raise SpecError(where, f"must be finite, got {value!r}", "write a finite number")
    return float(value)


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError(where, f"expected an integer, got {value!r}", "write a whole number such as 100")
    number = _number(where, value)
    if number != int(number):
        raise SpecError(where, f"expected an integer, got {value!r}", "write a whole number such as 100")
    return int(number)


def _at_least(where: str, value: float, low: float, *, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise SpecError(where, f"must be {relation} {low:g}, got {value:g}", f"use a value {relation} {low:g}")


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(where, f"unknown value {value!r}", f"use one of {', '.join(choices)}")
    return value


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(where, f"expected a mapping, got {type(value).__name__}", "write 'key: value' lines under it")
    for key in value:
        if not isinstance(key, str):
            raise SpecError(where, f"key {key!r} is not a string", "use field names as keys")
    return value


def _reject_unknown(where: str, data: Mapping[str, Any], cls: type) -> None:
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            prefix = f"{where}." if where else ""
            shown = key if key.isprintable() else repr(key)[1:-1]
            raise SpecError(f"{prefix}{shown}", "unknown key", f"valid keys are {', '.join(known)}")


# ----------------------------------------------------------------------------- sections


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {value!r}", "write true or false")
    return value


def _only_parameters_of(section: str, kind: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key != "name" and key not in allowed:
            shown = key if key.isprintable() else repr(key)[1:-1]
            raise SpecError(
                f"{section}.{shown}",
                f"not a parameter of {section} {kind}",
                f"its parameters are {', '.join(allowed) or 'none'}",
            )


def _task(data: Mapping[str, Any]) -> TaskSpec:
    _reject_unknown("task", data, TaskSpec)
    d = TaskSpec()
    name = _choice("task.name", data.get("name", d.name), TASKS)
    _only_parameters_of("task", name, data, TASK_PARAMETERS[name])
    defaults = {
        "modular": {"p": 97, "loss": "ce"},
        "permutation": {"loss": "ce"},
        "digits": {"loss": "mse"},
        "matrix_completion": {"dim": 97},
    }.get(name, {})

    def get(key: str) -> Any:
        return data.get(key, defaults.get(key, getattr(d, key)))

    task = TaskSpec(
        name=name,
        p=_integer("task.p", get("p")),
        op=get("op"),
        n=_integer("task.n", get("n")),
        loss=_choice("task.loss", get("loss"), LOSSES),
        template_dim=_integer("task.template_dim", get("template_dim")),
        n_samples=_integer("task.n_samples", get("n_samples")),
        dim=_integer("task.dim", get("dim")),
        sparsity=_integer("task.sparsity", get("sparsity")),
        data_seed=_integer("task.data_seed", get("data_seed")),
        rank=_integer("task.rank", get("rank")),
        tolerance=_number("task.tolerance", get("tolerance")),
    )
    _at_least("task.p", task.p, 2)
    _at_least("task.template_dim", task.template_dim, 1)
    _at_least("task.n_samples", task.n_samples, 2)
    _at_least("task.dim", task.dim, 1)
    _at_least("task.sparsity", task.sparsity, 1)
    _at_least("task.data_seed", task.data_seed, 0)
    _at_least("task.rank", task.rank, 1)
    _at_least("task.tolerance", task.tolerance, 0, strict=True)
    if task.rank > task.dim:
        raise SpecError("task.rank", f"{task.rank} exceeds dim {task.dim}", "use a rank <= dim")
    if name == "modular":
        _choice("task.op", task.op, MODULAR_OPS)
        if task.op in ("div", "mix1") and any(task.p % k == 0 for k in range(2, int(task.p**0.5) + 1)):
            raise SpecError("task.p", f"op {task.op} needs a prime p (a modular inverse), got {task.p}", "use e.g. 97 or 113")
    if name == "permutation":
        task = dataclasses.replace(task, op=_choice("task.op", data.get("op", "compose"), PERMUTATION_OPS))
        if task.n not in (3, 4, 5):
            raise SpecError("task.n", f"S_{task.n} is not offered", "use 3, 4 or 5 (S5 has 120 elements)")
    if task.sparsity > task.dim:
        raise SpecError("task.sparsity", f"{task.sparsity} exceeds dim {task.dim}", "use at most dim non-zeros")
    return task


def _model(data: Mapping[str, Any]) -> ModelSpec:
    _reject_unknown("model", data, ModelSpec)
    d = ModelSpec()
    hidden = data.get("hidden", list(d.hidden))
    if not isinstance(hidden, (list, tuple)):
        raise SpecError("model.hidden", f"expected a list of layer widths, got {hidden!r}", "write e.g. [200, 200]")
    widths = tuple(_integer(f"model.hidden[{i}]", w) for i, w in enumerate(hidden))
    for i, w in enumerate(widths):
        _at_least(f"model.hidden[{i}]", w, 1)
    name = _choice("model.name", data.get("name", d.name), MODELS)
    _only_parameters_of("model", name, data, MODEL_PARAMETERS[name])
    defaults = {"mlp": {"activation": "relu", "embed_dim": 0}, "transformer": {"activation": "relu"}}.get(name, {})

    def get(key: str) -> Any:
        return data.get(key, defaults.get(key, getattr(d, key)))

    model = ModelSpec(
        name=name,
        embed_dim=_integer("model.embed_dim", get("embed_dim")),
        hidden=widths,
        activation=_choice("model.activation", get("activation"), ACTIVATIONS),
        bias=_boolean("model.bias", get("bias")),
        n_layers=_integer("model.n_layers", get("n_layers")),
        d_model=_integer("model.d_model", get("d_model")),
        n_heads=_integer("model.n_heads", get("n_heads")),
        d_mlp=_integer("model.d_mlp", get("d_mlp")),
        layer_norm=_boolean("model.layer_norm", get("layer_norm")),
        with_op=_boolean("model.with_op", get("with_op")),
        parametrization=_choice("model.parametrization", get("parametrization"), ("squares", "product")),
        width=_integer("model.width", get("width")),
    )
    _at_least("model.width", model.width, 1)
    _at_least("model.embed_dim", model.embed_dim, 1 if name == "toy" else 0)
    for key in ("n_layers", "d_model", "n_heads", "d_mlp"):
        _at_least(f"model.{key}", getattr(model, key), 1)
    if model.d_model % model.n_heads:
        raise SpecError("model.n_heads", f"d_model {model.d_model} is not a multiple of n_heads {model.n_heads}", "pick a divisor of d_model")
    return model


def _training(data: Mapping[str, Any]) -> TrainingSpec:
    _reject_unknown("training", data, TrainingSpec)
    d = TrainingSpec()
    betas = data.get("betas", list(d.betas))
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise SpecError("training.betas", f"expected two numbers, got {betas!r}", "write e.g. [0.9, 0.999]")
    beta_values = tuple(_number(f"training.betas[{i}]", b) for i, b in enumerate(betas))
    for i, b in enumerate(beta_values):
        if not 0 <= b < 1:
            raise SpecError(f"training.betas[{i}]", f"must be in [0, 1), got {b:g}", "use e.g. 0.9 or 0.999")
    steps = _integer("training.steps", data.get("steps", d.steps))
    _at_least("training.steps", steps, 1)
    # Left out, eval_every is the default 10, or every step of a run shorter than that (which logs
    # the same steps, 0 and the last); given, it must fit in the run (else only 0 and the last log).
    eval_every = _integer("training.eval_every", data["eval_every"]) if "eval_every" in data else min(d.eval_every, steps)
    _at_least("training.eval_every", eval_every, 1)
    if eval_every > steps:
        raise SpecError(
            "training.eval_every",
            f"eval_every {eval_every} exceeds training.steps {steps} (only steps 0 and {steps} would be logged)",
            "use a value <= steps",
        )
    training = TrainingSpec(
        steps=steps,
        eval_every=eval_every,
        optimizer=_choice("training.optimizer", data.get("optimizer", d.optimizer), OPTIMIZERS),
        betas=beta_values,  # type: ignore[arg-type]
        eps=_number("training.eps", data.get("eps", d.eps)),
        precision=_choice("training.precision", data.get("precision", d.precision), PRECISIONS),
        early_stop=_early_stop(data.get("early_stop", d.early_stop)),
        log_schedule=_log_schedule(data.get("log_schedule", d.log_schedule)),
        batch_size=None if data.get("batch_size") is None else _integer("training.batch_size", data["batch_size"]),
        warmup_steps=_integer("training.warmup_steps", data.get("warmup_steps", d.warmup_steps)),
    )
    if training.batch_size is not None:
        _at_least("training.batch_size", training.batch_size, 1)
    _at_least("training.warmup_steps", training.warmup_steps, 0)
    _at_least("training.eps", training.eps, 0, strict=True)
    return training


def _log_schedule(raw: Any) -> LogScheduleSpec | None:
    if raw is None or raw is False:
        return None
    data = _mapping("training.log_schedule", raw)
    _reject_unknown("training.log_schedule", data, LogScheduleSpec)
    d = LogScheduleSpec()
    schedule = LogScheduleSpec(
        dense_until=_integer("training.log_schedule.dense_until", data.get("dense_until", d.dense_until)),
        per_decade=_integer("training.log_schedule.per_decade", data.get("per_decade", d.per_decade)),
    )
    _at_least("training.log_schedule.dense_until", schedule.dense_until, 1)
    _at_least("training.log_schedule.per_decade", schedule.per_decade, 1)
    return schedule


def _early_stop(raw: Any) -> EarlyStopSpec | None:
    if raw is None or raw is False:
        return None
    data = _mapping("training.early_stop", raw)
    _reject_unknown("training.early_stop", data, EarlyStopSpec)
    d = EarlyStopSpec()
    threshold = _number("training.early_stop.threshold", data.get("threshold", d.threshold))
    if not 0 < threshold <= 1:
        raise SpecError("training.early_stop.threshold", f"must be in (0, 1], got {threshold:g}", "use an accuracy such as 0.99")
    patience = _integer("training.early_stop.patience", data.get("patience", d.patience))
    _at_least("training.early_stop.patience", patience, 1)
    return EarlyStopSpec(threshold=threshold, patience=patience)


def _grid_values(where: str, raw: Any) -> list[float]:
    """A grid axis: a scalar, a list, or {logspace|linspace: [start, stop, num]}."""
    if isinstance(raw, Mapping):
        if len(raw) != 1 or next(iter(raw)) not in ("logspace", "linspace"):
            raise SpecError(where, f"unknown range form {dict(raw)!r}", "write a list, or {logspace: [1e-5, 1e-2, 4]}")
        kind, args = next(iter(raw.items()))
        if not isinstance(args, (list, tuple)) or len(args) != 3:
            raise SpecError(f"{where}.{kind}", f"expected [start, stop, num], got {args!r}", "write e.g. [1e-5, 1e-2, 4]")
        start, stop = _number(f"{where}.{kind}[0]", args[0]), _number(f"{where}.{kind}[1]", args[1])
        num = _integer(f"{where}.{kind}[2]", args[2])
        _at_least(f"{where}.{kind}[2]", num, 1)
        if num > MAX_AXIS_VALUES:  # checked before the values are built: a typo must answer at once
            raise SpecError(f"{where}.{kind}[2]", f"{num:,} values on one axis", f"use at most {MAX_AXIS_VALUES:,} (is it a typo?)")
        if kind == "logspace":
            for i, v in enumerate((start, stop)):
                _at_least(f"{where}.logspace[{i}]", v, 0, strict=True)
            lo, hi = math.log10(start), math.log10(stop)
            return [_round(10 ** (lo + (hi - lo) * i / max(num - 1, 1))) for i in range(num)]
        return [_round(start + (stop - start) * i / max(num - 1, 1)) for i in range(num)]
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not values:
        raise SpecError(where, "empty list: the grid would have no runs", "give at least one value")
    return [_number(f"{where}[{i}]" if isinstance(raw, (list, tuple)) else where, v) for i, v in enumerate(values)]


def _round(value: float) -> float:
    # 12 significant digits: logspace(1e-5, 1e-2, 4) gives 1e-4 exactly, so run ids are stable.
    return float(f"{value:.12g}")


def _grid(data: Mapping[str, Any]) -> GridSpec:
    _reject_unknown("grid", data, GridSpec)
    d = GridSpec()
    axes: dict[str, tuple] = {}
    for name in HYPERPARAMETERS:
        where = f"grid.{name}"
        values = _grid_values(where, data[name]) if name in data else list(getattr(d, name))
        if len(set(values)) != len(values):
            raise SpecError(where, f"repeated values {values}", "list each value once")
        for i, v in enumerate(values):
            at = f"{where}[{i}]" if len(values) > 1 or isinstance(data.get(name), (list, tuple)) else where
            _check_hyperparameter(at, name, v)
        axes[name] = tuple(int(v) for v in values) if name == "seed" else tuple(values)
    return GridSpec(**axes)


def _check_hyperparameter(where: str, name: str, value: float) -> None:
    if name.endswith("_lr"):
        _at_least(where, value, 0, strict=True)
    elif name.endswith("_wd"):
        _at_least(where, value, 0)
    elif name == "init_scale":
        _at_least(where, value, 0, strict=True)
    elif name == "train_fraction":
        if not 0 < value < 1:
            raise SpecError(where, f"must be in (0, 1), got {value:g}", "use a fraction such as 0.8")
    elif name == "seed":
        if value != int(value) or value < 0:
            raise SpecError(where, f"must be a non-negative integer, got {value:g}", "use e.g. 0")


def _phases(data: Mapping[str, Any]) -> PhasesSpec:
    _reject_unknown("phases", data, PhasesSpec)
    d = PhasesSpec()
    threshold = _number("phases.threshold", data.get("threshold", d.threshold))
    if not 0 < threshold <= 1:
        raise SpecError("phases.threshold", f"must be in (0, 1], got {threshold:g}", "use an accuracy such as 0.9")
    gap = _integer("phases.gap", data.get("gap", d.gap))
    _at_least("phases.gap", gap, 0)
    budget = data.get("budget", d.budget)
    if budget is not None:
        budget = _integer("phases.budget", budget)
        _at_least("phases.budget", budget, 1)
    fractions = {}
    for key, low_open in (("semi_min", True), ("semi_max", True), ("drop_min", False), ("plateau_window", True)):
        value = _number(f"phases.{key}", data.get(key, getattr(d, key)))
        if not ((0 < value) if low_open else (0 <= value)) or value > 1:
            raise SpecError(f"phases.{key}", f"must be in {'(0' if low_open else '[0'}, 1], got {value:g}", "use a fraction such as 0.5")
        fractions[key] = value
    if fractions["semi_min"] >= fractions["semi_max"]:
        raise SpecError("phases.semi_min", f"must be below semi_max {fractions['semi_max']:g}", "lower semi_min or raise semi_max")
    return PhasesSpec(threshold=threshold, gap=gap, budget=budget, **fractions)


def _resources(data: Mapping[str, Any]) -> ResourcesSpec:
    _reject_unknown("resources", data, ResourcesSpec)
    d = ResourcesSpec()
    cpus = _number("resources.cpus_per_trial", data.get("cpus_per_trial", d.cpus_per_trial))
    gpus = _number("resources.gpus_per_trial", data.get("gpus_per_trial", d.gpus_per_trial))
    _at_least("resources.cpus_per_trial", cpus, 0, strict=True)
    _at_least("resources.gpus_per_trial", gpus, 0)
    concurrent = data.get("max_concurrent", d.max_concurrent)
    if concurrent is not None:
        concurrent = _integer("resources.max_concurrent", concurrent)
        _at_least("resources.max_concurrent", concurrent, 1)
    pack_size = data.get("pack_size", d.pack_size)
    if pack_size != "auto":
        pack_size = _integer("resources.pack_size", pack_size)
        _at_least("resources.pack_size", pack_size, 1)
    flush_every = _integer("resources.flush_every", data.get("flush_every", d.flush_every))
    _at_least("resources.flush_every", flush_every, 1)
    checkpoint_every = _integer("resources.checkpoint_every", data.get("checkpoint_every", d.checkpoint_every))
    _at_least("resources.checkpoint_every", checkpoint_every, 1)
    max_failures = _integer("resources.max_failures", data.get("max_failures", d.max_failures))
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
    data = _mapping("spec", data)
    _reject_unknown("", data, SweepSpec)
    if "name" not in data:
        raise SpecError("name", "missing", "add 'name: <sweep name>' (it names the results folder)")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SpecError("name", f"invalid sweep name {name!r}", "use letters, digits, '_', '-' or '.' (at most 64)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", f"expected text, got {type(description).__name__}", "quote it")
    sections = {key: build(_mapping(key, data.get(key))) for key, build in _SECTIONS.items()}
    spec = SweepSpec(name=name, description=description, **sections)
    _check_consistency(spec)
    return spec


def _check_consistency(spec: SweepSpec) -> None:
    """Checks that span sections."""
    if spec.model.name not in MODELS_FOR_TASK[spec.task.name]:
        raise SpecError(
            "model.name",
            f"model {spec.model.name} does not read task {spec.task.name}'s inputs",
            f"use one of {', '.join(MODELS_FOR_TASK[spec.task.name])}",
        )
    examples = n_examples(spec.task)
    for i, fraction in enumerate(spec.grid.train_fraction):
        n_train = round(fraction * examples)
        if n_train < 1 or n_train >= examples:
            raise SpecError(
                f"grid.train_fraction[{i}]",
                f"{fraction:g} of {examples} examples leaves an empty train or validation set",
                "use a fraction that keeps at least one example on each side",
            )
    if spec.phases.budget is not None and spec.phases.budget > spec.training.steps:
        raise SpecError(
            "phases.budget",
            f"budget {spec.phases.budget} exceeds training.steps {spec.training.steps}",
            "lower the budget or train longer",
        )


def n_examples(task: TaskSpec) -> int:
    """How many examples (train + validation) the task has; the arithmetic of tasks/."""
    if task.name == "toy_addition":
        return task.p * (task.p + 1) // 2
    if task.name == "modular":
        return task.p * (task.p - 1) if task.op == "div" else task.p * task.p
    if task.name == "permutation":
        return math.factorial(task.n) ** 2
    if task.name == "digits":
        return 1797  # sklearn.datasets.load_digits
    if task.name == "matrix_completion":
        return task.dim * task.dim
    return task.n_samples


def _shown_key(key: Any) -> str:
    """A key as a field name in a one-line message (a newline in it is escaped)."""
    text = key if isinstance(key, str) else repr(key)
    return text if text.isprintable() else repr(text)[1:-1]


class _SpecLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (same types: 1e-3 stays the string that spec.py converts),
    except that a key given twice in one mapping is a SpecError instead of keeping the last.

    Each node's dotted path is recorded on its children as its parent is built (a parent is
    always built before its children), so that the error names the field, e.g. ``training.steps``.
    """

    _MERGE = "tag:yaml.org,2002:merge"

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._paths: dict[int, str] = {}
        self._checked: set[int] = set()

    def _path_of(self, parent: yaml.Node, key: Any = None, index: int | None = None) -> str:
        """The dotted field of ``parent``'s child under ``key`` (a mapping) or ``index`` (a list)."""
        base = self._paths.get(id(parent), "")
        if index is not None:
            return f"{base}[{index}]"
        return f"{base}.{_shown_key(key)}" if base else _shown_key(key)

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        """Before merges are flattened in (a key after '<<: *base' overrides it, as YAML means)."""
        if id(node) in self._checked:
            return
        self._checked.add(id(node))
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == self._MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            line = key_node.start_mark.line + 1
            if seen:
                where = self._path_of(node, key)
                lines = f"line {line}" if line == first_line[key] else f"lines {first_line[key]} and {line}"
                raise SpecError(where, f"given twice ({lines})", "keep one")
            first_line[key] = line

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        self._refuse_duplicates(node)
        super().flatten_mapping(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag != self._MERGE:
                    key = self.construct_object(key_node, deep=True)
                    self._paths.setdefault(id(value_node), self._path_of(node, key))
        return super().construct_mapping(node, deep=deep)  # flattens merges, so checks first

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._paths.setdefault(id(item), self._path_of(node, index=i))
        return super().construct_sequence(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """YAML text as plain data, like ``yaml.safe_load`` but refusing duplicate keys (SpecError)."""
    loader = _SpecLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _reason(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _spec_text(path: Path) -> str:
    """The text of a spec file; a missing path, a folder or an unreadable file is a SpecError."""
    shown = _shown_key(str(path))
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the path
        raise SpecError(shown, "no such file", "give the path of a sweep YAML, e.g. sweeps/quickstart.yaml") from None
    except PermissionError:
        raise SpecError(shown, "cannot be read (permission denied)", "check the permissions of the folders above it") from None
    except OSError as exc:
        raise SpecError(shown, f"cannot be read ({_reason(exc)})", "check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        try:
            found = sorted(p.name for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        except OSError:
            found = []
        if found:
            example = path / ("quickstart.yaml" if "quickstart.yaml" in found else found[0])
            fix = f"give a YAML file such as {_shown_key(str(example))}"
        else:
            fix = "give the path of a sweep YAML file, e.g. sweeps/quickstart.yaml"
        raise SpecError(shown, "is a folder, not a spec file", fix)
    if not stat.S_ISREG(mode):
        raise SpecError(shown, "is not a regular file", "give the path of a sweep YAML file, e.g. sweeps/quickstart.yaml")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(shown, f"not valid YAML ({exc})", "save it as UTF-8 text") from None
    except PermissionError:
        raise SpecError(shown, "cannot be read (permission denied)", "make it readable (chmod u+r) or give another file") from None
    except OSError as exc:
        raise SpecError(shown, f"cannot be read ({_reason(exc)})", "check the file and its permissions") from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file; every problem is a SpecError (one line)."""
    path = Path(path)
    text = _spec_text(path)
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise SpecError(_shown_key(str(path)), f"not valid YAML ({problem})", "fix the YAML syntax") from None
    except RecursionError:  # thousands of nested brackets: no spec is written like that
        raise SpecError(_shown_key(str(path)), "not valid YAML (nested too deeply)", "fix the YAML syntax") from None
    return spec_from_dict(data)


def dump_spec(spec: SweepSpec) -> str:
    """The spec as YAML text (what results/<sweep>/spec.yaml holds)."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
