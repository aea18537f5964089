"""Which steps of a run are logged (evaluated and written as metric rows).

Shared by the training loop, which evaluates at these steps, and by the readers that check a
run's rows on disk against them (``completion.py``: a run whose rows skip a logged step is
damaged, not finished). No torch here, so the checks run where only pandas is installed.
"""

from __future__ import annotations

from grokgrid import stages
from grokgrid.spec import SweepSpec


def eval_steps(total_steps: int, every: int, dense_until: int | None = None, per_decade: int | None = None) -> list[int]:
    """Logged steps: 0, every, 2*every, ... (up to ``dense_until`` when given, then
    ``per_decade`` geometric steps per factor of 10), and always the last step."""
    dense_end = total_steps if dense_until is None else min(dense_until, total_steps)
    steps = set(range(0, dense_end + 1, every))
    if dense_until is not None and per_decade:
        i = 1
        while (step := round(dense_end * 10 ** (i / per_decade))) < total_steps:
            steps.add(step)
            i += 1
    steps.add(total_steps)
    return sorted(steps)


def logged_steps(spec: SweepSpec) -> list[int]:
    """The logged steps of every run of ``spec``, over all its stages; with stages, the last
    step of every stage too (the classifier and the report see each stage's end)."""
    schedule = spec.training.log_schedule
    total = spec.total_steps
    if schedule is None:
        steps = eval_steps(total, spec.training.eval_every)
    else:
        steps = eval_steps(total, spec.training.eval_every, schedule.dense_until, schedule.per_decade)
    if spec.stages:
        steps = sorted(set(steps) | set(stages.ends(spec)))
    return steps
