"""Field axes: a task, model or training field swept on the grid (``grid: {task.p: [59, 97]}``).

The seven hyperparameters, a stage's fields and an intervention's strength are *per-run* axes:
runs that differ in them still share a pack (each run holds its own value). A field axis may
change shapes (p, a width, the batch size, the precision), so a run's field values pick the spec
it trains under (its *variant*: the spec with those fields set) and runs with different values
go into different packs (grid.pack).

Parsing builds every variant with ``spec_from_dict`` itself, so each value meets exactly the
checks a spec that fixes the field would meet (p prime, a width >= 1, a fraction that leaves a
validation set at this p); an error names the axis and the value. The values a run carries (and
its id hashes) are the variant's parsed ones, so ``1e-3`` written as text and as a number, or a
width list and tuple, give one id.

Standard library only (spec.py loads it without torch).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Mapping, Sequence

from grokgrid import spec_checks as check
from grokgrid.spec_checks import SpecError

SECTIONS = ("task", "model", "training")
# Training fields that may be axes. The others are shared by every run: steps, eval_every,
# log_schedule and early_stop fix which steps are logged and when a pack ends; the
# interventions' sections are switched on once, their strengths swept per run
# (training.grokfast.lamb, ...).
TRAINING_FIELDS = ("batch_size", "warmup_steps", "optimizer", "betas", "eps", "precision", "orthogonal_gradients",
                   "fused_optimizer")
# Combinations of field values (one variant, and at least one pack, each): every one is built
# and checked while the spec is read.
MAX_VARIANTS = 1_000


def is_field_axis(name: str) -> bool:
    """A dotted grid key naming a task, model or training field (``training.grokfast.lamb``,
    two dots deep, is an intervention's per-run strength instead)."""
    section, _, rest = name.partition(".")
    return section in SECTIONS and bool(rest) and "." not in rest


def field_keys(grid: Mapping[str, Any]) -> list[str]:
    """The grid's field axes, in the order written."""
    return [key for key in grid if isinstance(key, str) and is_field_axis(key)]


def check_field(axis: str, data: Mapping[str, Any], kinds: Mapping[str, tuple[str, tuple[str, ...]] | None]) -> None:
    """An axis must name a field that can vary per pack and that its section leaves unset.
    ``kinds``: per section, the kind the spec names and its parameters (None: an unknown kind,
    which the section's own check reports)."""
    section, _, name = axis.partition(".")
    where = f"grid.{axis}"
    if name == "name":
        raise SpecError(where, f"the {section} kind cannot be an axis (each kind has its own parameters)",
                        f"write one spec per {section} kind, or sweep one of its parameters")
    kind = kinds.get(section)
    if kind is not None and name not in kind[1]:
        raise SpecError(where, f"{check.shown_key(name)!r} is not a parameter of {section} {kind[0]}",
                        f"sweep one of {', '.join(kind[1])}")
    if section == "training" and name not in TRAINING_FIELDS:
        raise SpecError(where, f"training.{name} cannot be a grid axis",
                        f"sweep one of {', '.join(TRAINING_FIELDS)} (steps, logging and early stop are shared by every run)")
    if name in check.mapping(section, data.get(section)):
        raise SpecError(where, f"{section}.{name} is also set", f"set it in one place: remove {section}.{name} or the axis")


def written_values(where: str, raw: Any, numeric_range: Any) -> list[Any]:
    """An axis' values as written: a list, one value, or a numeric range form ({logspace: ...},
    read by ``numeric_range(where, raw)``). Each value is checked later, by its variant."""
    if isinstance(raw, Mapping):
        return list(numeric_range(where, raw))
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not values:
        raise SpecError(where, "empty list: the grid would have no runs", "give at least one value")
    for i, value in enumerate(values):
        if value is None:
            raise SpecError(f"{where}[{i}]" if isinstance(raw, (list, tuple)) else where, "null is not an axis value",
                            "list the values to sweep (leave the field off the grid to keep its default)")
    return values


def check_count(axes: Sequence[tuple[str, Sequence[Any]]]) -> None:
    count = math.prod(len(values) for _, values in axes)
    if count > MAX_VARIANTS:
        raise SpecError(f"grid.{axes[0][0]}", f"the field axes make {count:,} combinations (a pack each at least)",
                        f"sweep at most {MAX_VARIANTS:,} combinations of task, model and training fields")


def variant_data(data: Mapping[str, Any], values: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The spec's plain data with each field set to its value and taken off the grid; without
    claims, ties and refinement (they are about the whole grid, checked once on it)."""
    out = {key: value for key, value in data.items() if key not in ("expect", "refine")}
    out["grid"] = {k: v for k, v in check.mapping("grid", out.get("grid")).items() if not is_field_axis(k) and k != "tie"}
    for axis, value in values:
        section, _, name = axis.partition(".")
        out[section] = {**check.mapping(section, out.get(section)), name: copy.deepcopy(value)}
    return out


def blame(exc: SpecError, values: Sequence[tuple[str, Any, int]]) -> SpecError:
    """A variant's error, said of the grid: naming the axis value at fault when the error is about
    its field, else the field with the combination that broke it. ``values``: (axis, value as
    written, index in the axis)."""
    for axis, value, i in values:
        if exc.where == axis or exc.where.startswith((axis + ".", axis + "[")):
            return SpecError(f"grid.{axis}[{i}]", f"{value!r}: {exc.problem}", exc.fix)
    combination = ", ".join(f"{axis} = {value!r}" for axis, value, _ in values)
    return SpecError(exc.where, f"{exc.problem} (with {combination})", exc.fix)


def value_of(spec: Any, axis: str) -> Any:
    """A field's value in a (variant) spec."""
    section, _, name = axis.partition(".")
    return getattr(getattr(spec, section), name)


def apply(spec: Any, values: Mapping[str, Any]) -> Any:
    """The spec with each field set to its value (values as parsed: a list read back from JSON
    becomes the tuple the field holds). Sections are replaced, not re-read: every value was
    checked when the spec was parsed."""
    changed: dict[str, dict[str, Any]] = {}
    for axis, value in values.items():
        section, _, name = axis.partition(".")
        changed.setdefault(section, {})[name] = as_tuple(value)
    return dataclasses.replace(spec, **{section: dataclasses.replace(getattr(spec, section), **fields)
                                        for section, fields in changed.items()})


def as_tuple(value: Any) -> Any:
    """Lists (JSON's tuples) as tuples, all the way down."""
    if isinstance(value, (list, tuple)):
        return tuple(as_tuple(v) for v in value)
    return value


def shown(value: Any) -> Any:
    """A value as runs.parquet and the report show it: a number, text or bool as is, a list
    (layer widths, betas) as its YAML text ("[128, 128]"), so a column holds scalars."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(shown(v)) for v in value) + "]"
    return value
