"""Stages after the first (Varma et al.'s ungrokking): their spec (``stages:``), parsing and the
fields a stage may change, each also a grid axis ``<stage>.<field>``. Standard library only
(spec.py loads it without torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grokgrid import spec_checks as check
from grokgrid.spec_axes import check_hyperparameter
from grokgrid.spec_checks import SpecError

# Stage fields that change a run from its stage on; each may also be a grid axis, written
# `<stage>.<field>` (grid: {shrink.train_subset: [0.2, 0.4]}). A stage's steps are shared by every
# run of the sweep (they fix the logged steps and the pack's length), so they are not an axis.
STAGE_FIELDS = ("train_subset", "repr_lr", "decoder_lr", "repr_wd", "decoder_wd")
FIRST_STAGE = "train"  # the name of stage 0, the `training.steps` every run starts with
STAGE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


@dataclass(frozen=True)
class StageSpec:
    """A stage after the first (Varma et al.'s ungrokking: train on D, then on D' within D).

    It trains ``steps`` more steps; from its first step on, a field that is set replaces the
    run's value: ``train_subset`` keeps that fraction of the previous stage's training examples
    (chosen per run by a seed of its own, so D' is a subset of D; the validation set stays the
    examples outside the first stage's training set), the others the learning rates and weight
    decays. None: as in the previous stage. A field swept on the grid (``<name>.<field>``) comes
    from the run instead (grid.RunConfig.extra).
    """

    name: str
    steps: int
    train_subset: float | None = None
    repr_lr: float | None = None
    decoder_lr: float | None = None
    repr_wd: float | None = None
    decoder_wd: float | None = None

    def written(self) -> dict[str, Any]:
        """name, steps and the fields that are set (a field added later never changes the
        run ids of specs that leave it out)."""
        return {"name": self.name, "steps": self.steps,
                **{f: getattr(self, f) for f in STAGE_FIELDS if getattr(self, f) is not None}}


# Names a stage may not take: the first stage's, and the spec's sections (a dotted grid axis
# `<section>.<field>` will name those when any spec field becomes an axis, issue 17 part 3).
RESERVED_STAGE_NAMES = (FIRST_STAGE, "name", "description", "task", "model", "training", "grid", "phases",
                        "resources", "expect", "stages")


def parse_stages(raw: Any) -> tuple[StageSpec, ...]:
    """The ``stages:`` list: each a mapping with a unique identifier ``name`` and ``steps``."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise SpecError("stages", f"expected a list, got {type(raw).__name__}",
                        "write '- {name: shrink, steps: 1000, train_subset: 0.5}' items under it")
    stages: list[StageSpec] = []
    for i, item in enumerate(raw):
        where = f"stages[{i}]"
        data = check.mapping(where, item)
        check.reject_unknown(where, data, StageSpec)
        name = data.get("name")
        if not isinstance(name, str) or not STAGE_NAME_PATTERN.match(name):
            raise SpecError(f"{where}.name", f"missing or not an identifier: {name!r}",
                            "name the stage with letters, digits and '_' (e.g. shrink)")
        if name in RESERVED_STAGE_NAMES:
            raise SpecError(f"{where}.name", f"{name!r} is reserved", "pick another name (e.g. shrink)")
        if any(s.name == name for s in stages):
            raise SpecError(f"{where}.name", f"stage {name!r} is named twice", "give each stage its own name")
        if "steps" not in data:
            raise SpecError(f"{where}.steps", "missing", "give the stage's step count, e.g. steps: 1000")
        steps = check.integer(f"{where}.steps", data["steps"])
        check.at_least(f"{where}.steps", steps, 1)
        fields = {}
        for key in STAGE_FIELDS:
            if data.get(key) is not None:
                value = check.number(f"{where}.{key}", data[key])
                check_stage_value(f"{where}.{key}", key, value)
                fields[key] = value
        stages.append(StageSpec(name=name, steps=steps, **fields))
    return tuple(stages)


def check_stage_value(where: str, key: str, value: float) -> None:
    if key == "train_subset":
        if not 0 < value <= 1:
            raise SpecError(where, f"must be in (0, 1], got {value:g}",
                            "use the fraction of the previous stage's training set to keep, e.g. 0.5")
    else:
        check_hyperparameter(where, key, value)
