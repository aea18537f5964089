"""A run's stages: where each one ends, which stage a step belongs to, and a run's values in it.

Stage 0 ("train") is ``training.steps``; the spec's ``stages:`` follow it (spec.StageSpec). The
step counter is global: stage k covers the updates from ``ends[k-1]`` to ``ends[k]``, and the row
of a logged step s (the parameters after s updates) belongs to the stage whose updates produced
it, so the row at a stage's last step (its end) is that stage's, and step 0 is stage 0's.

Everything here is a pure function of the spec and the run: a checkpoint holds no stage, since
the step fixes it, and the masks and rates of a stage are recomputed from the run on resume.
Standard library only (completion.py and schedule.py use it without torch).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from grokgrid.grid import RunConfig
from grokgrid.spec import FIRST_STAGE, STAGE_FIELDS, SweepSpec

RATES = ("repr_lr", "decoder_lr", "repr_wd", "decoder_wd")


def names(spec: SweepSpec) -> list[str]:
    return [FIRST_STAGE, *(stage.name for stage in spec.stages)]


def ends(spec: SweepSpec) -> list[int]:
    """The last step of each stage (the last is the run's last step)."""
    out = [spec.training.steps]
    for stage in spec.stages:
        out.append(out[-1] + stage.steps)
    return out


def stage_of_row(stage_ends: list[int], step: int) -> int:
    """The stage of the row logged at ``step``: the first stage ending at or after it."""
    return min(bisect.bisect_left(stage_ends, step), len(stage_ends) - 1)


def stage_of_update(stage_ends: list[int], step: int) -> int:
    """The stage of the update from ``step`` to ``step + 1`` (the stage of the row it makes)."""
    return stage_of_row(stage_ends, step + 1)


@dataclass(frozen=True)
class StageValues:
    """What a run trains with in one stage."""

    repr_lr: float
    decoder_lr: float
    repr_wd: float
    decoder_wd: float
    # train_subset of every stage from 1 up to this one (stage 0's training set is the split).
    subsets: tuple[float, ...]


def run_values(spec: SweepSpec, run: RunConfig, stage: int) -> StageValues:
    """A run's rates and subsets in ``stage``: each stage's setting (from the stage, or from
    the run's value of the grid axis ``<stage>.<field>``) replaces the previous one; a field set
    nowhere keeps its value from the stage before."""
    rates = {rate: getattr(run, rate) for rate in RATES}
    subsets = []
    for spec_stage in spec.stages[:stage]:
        for field in STAGE_FIELDS:
            value = run.value(f"{spec_stage.name}.{field}", getattr(spec_stage, field))
            if field == "train_subset":
                subsets.append(1.0 if value is None else value)
            elif value is not None:
                rates[field] = value
    return StageValues(**rates, subsets=tuple(subsets))
