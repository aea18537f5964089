"""The phase criteria: the thresholds that turn a run's curves into a phase label.

One definition for both sides: the spec's ``phases`` section (spec.PhasesSpec) is this class,
and phases.py classifies with it. Standard library only, so that spec.py stays free of numpy
and pandas. phases.py's module docstring explains what each criterion decides.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PhaseCriteria:
    """Thresholds that define the phases (Liu et al.: threshold 0.9, gap 1e3, budget 1e5) and the
    labels reported beside them.

    threshold       accuracy that counts as fitted / generalised, in (0, 1]
    gap             G: t_val - t_train >= G is grokking (and t_semi - t_train >= G semi-grokking)
    budget          only logged steps <= budget count (None: all)
    semi_min        lowest plateau val acc of semi-grokking (inclusive), in (0, semi_max)
    semi_max        plateau val acc of semi-grokking is below this (exclusive), in (semi_min, 1]
    drop_min        un/misgrokking: peak val acc - plateau val acc must be >= this, in [0, 1]
    plateau_window  fraction of a run's logged step range, at its end, averaged into the plateau
                    val acc, in (0, 1]
    plateau_rise_max  semi-grokking: the plateau must be flat, i.e. at most this above the val acc
                    half way from t_semi to the last step (phases.py says how), in [0, 1]
    """

    threshold: float = 0.9
    gap: int = 1000
    budget: int | None = None
    semi_min: float = 0.4
    semi_max: float = 0.9
    drop_min: float = 0.1
    plateau_window: float = 0.1
    plateau_rise_max: float = 0.05

    def __post_init__(self) -> None:
        if not (_is_real(self.threshold) and 0.0 < self.threshold <= 1.0):  # False for NaN too
            raise ValueError(f"threshold must be a number in (0, 1], got {self.threshold!r}")
        if not (_is_int(self.gap) and self.gap >= 0):
            raise ValueError(f"gap must be an integer >= 0, got {self.gap!r}")
        if self.budget is not None and not (_is_int(self.budget) and self.budget > 0):
            raise ValueError(f"budget must be None or an integer > 0, got {self.budget!r}")
        if not (_is_real(self.semi_min) and 0.0 < self.semi_min < 1.0):
            raise ValueError(f"semi_min must be a number in (0, 1), got {self.semi_min!r}")
        if not (_is_real(self.semi_max) and 0.0 < self.semi_max <= 1.0):
            raise ValueError(f"semi_max must be a number in (0, 1], got {self.semi_max!r}")
        if not self.semi_min < self.semi_max:
            raise ValueError(f"semi_min must be below semi_max, got semi_min={self.semi_min!r}, semi_max={self.semi_max!r}")
        if not (_is_real(self.drop_min) and 0.0 <= self.drop_min <= 1.0):
            raise ValueError(f"drop_min must be a number in [0, 1], got {self.drop_min!r}")
        if not (_is_real(self.plateau_window) and 0.0 < self.plateau_window <= 1.0):
            raise ValueError(f"plateau_window must be a number in (0, 1], got {self.plateau_window!r}")
        if not (_is_real(self.plateau_rise_max) and 0.0 <= self.plateau_rise_max <= 1.0):
            raise ValueError(f"plateau_rise_max must be a number in [0, 1], got {self.plateau_rise_max!r}")

    def with_overrides(self, **overrides: object) -> "PhaseCriteria":
        """A copy with the given fields replaced; None means "keep" (a CLI option not given).

        Unknown names are a ValueError naming them; values are validated as in the constructor.
        """
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; valid: {', '.join(self.__dataclass_fields__)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# Criteria added after results folders existed. A spec writes one only when it differs from its
# default (SweepSpec.to_dict), so that the spec.yaml of every older sweep dumps exactly as before.
ADDED_LATER = ("plateau_rise_max",)


def written_fields(criteria: PhaseCriteria) -> dict[str, object]:
    """The fields a spec's ``phases`` section writes out: all but ADDED_LATER ones at their default."""
    default = PhaseCriteria()
    return {
        name: getattr(criteria, name)
        for name in criteria.__dataclass_fields__
        if not (name in ADDED_LATER and getattr(criteria, name) == getattr(default, name))
    }


def _is_real(x: object) -> bool:
    # bool is an int subclass; a spec saying `threshold: true` is a mistake, not 1.0.
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
