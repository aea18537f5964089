"""The interventions' spec sections (issue 17): Grokfast's gradient filter and Tan & Huang's
input perturbation, their parsing, and their strengths as per-run grid axes
(``training.grokfast.lamb``, ...). The training section that holds them is spec.py's.
Standard library only (spec.py loads it without torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from grokgrid import spec_checks as check
from grokgrid.spec_axes import axis_values
from grokgrid.spec_checks import SpecError

# Grokfast's filters (Lee et al. 2024, ironjr/grokfast grokfast.py): gradfilter_ema and
# gradfilter_ma, and each filter's default amplification lamb (their README's settings).
GROKFAST_FILTERS = ("ema", "ma")
GROKFAST_LAMB = {"ema": 2.0, "ma": 5.0}
# Interventions that are grid axes (`training.<intervention>.<field>`): per-run values inside one
# pack (no shape changes), 0 meaning "off" for lamb and sigma.
INTERVENTION_AXES = ("training.grokfast.lamb", "training.grokfast.alpha", "training.perturbation.sigma")
# The models whose continuous input (``embed``, then ``from_embedded``) the perturbation noises.
PERTURBABLE_MODELS = ("mlp", "transformer")


@dataclass(frozen=True)
class GrokfastSpec:
    """Grokfast: before each update, every gradient g becomes g + lamb * filtered(g).

    ``filter: ema``: filtered = ema, ema = alpha * ema + (1 - alpha) * g (started at the first
    gradient, as the reference's gradfilter_ema). ``filter: ma``: the mean of the last ``window``
    gradients, applied only once the window is full unless ``warmup`` is false (gradfilter_ma).
    ``lamb`` (and ``alpha``) None: swept on the grid (``training.grokfast.lamb``), per run.
    """

    filter: str = "ema"
    alpha: float | None = 0.98  # ema only (None for ma)
    lamb: float | None = None  # None after parsing: a grid axis
    window: int = 100  # ma only
    warmup: bool = True  # ma only: no filtering until the window is full

    def written(self) -> dict[str, Any]:
        """The fields that mean something for this filter, and only those set (a swept one is
        the grid's)."""
        keys = ("filter", "alpha", "lamb") if self.filter == "ema" else ("filter", "lamb", "window", "warmup")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class PerturbationSpec:
    """Tan & Huang's perturbation (input/embedding noise): in training steps only, Gaussian noise
    of scale ``sigma`` is added to the model's continuous input (embeddings or features), drawn
    per run from a generator of its own seed. None: swept on the grid (``training.perturbation.sigma``)."""

    sigma: float | None = None

    def written(self) -> dict[str, Any]:
        return {} if self.sigma is None else {"sigma": self.sigma}


def parse_grokfast(raw: Any) -> GrokfastSpec | None:
    """``training.grokfast``: the filter and its settings; lamb (and alpha) may be left to the
    grid (resolved by _resolve_interventions once the grid's axes are known)."""
    if raw is None or raw is False:
        return None
    where = "training.grokfast"
    data = check.mapping(where, raw)
    check.reject_unknown(where, data, GrokfastSpec)
    name = check.choice(f"{where}.filter", data.get("filter", "ema"), GROKFAST_FILTERS)
    other = ("window", "warmup") if name == "ema" else ("alpha",)
    for key in other:
        if key in data:
            raise SpecError(f"{where}.{key}", f"not a setting of filter {name}",
                            "alpha is the ema filter's; window and warmup are the ma filter's")
    d = GrokfastSpec()
    # alpha and lamb stay None when left out: their defaults are filled, or the grid sweeps them.
    alpha = None if data.get("alpha") is None else intervention_value(f"{where}.alpha", "alpha", data["alpha"])
    lamb = None if data.get("lamb") is None else intervention_value(f"{where}.lamb", "lamb", data["lamb"])
    window = check.integer(f"{where}.window", data.get("window", d.window))
    check.at_least(f"{where}.window", window, 1)
    warmup = check.boolean(f"{where}.warmup", data.get("warmup", d.warmup))
    return GrokfastSpec(filter=name, alpha=alpha, lamb=lamb, window=window, warmup=warmup)


def parse_perturbation(raw: Any) -> PerturbationSpec | None:
    if raw is None or raw is False:
        return None
    where = "training.perturbation"
    data = check.mapping(where, raw)
    check.reject_unknown(where, data, PerturbationSpec)
    sigma = None if data.get("sigma") is None else intervention_value(f"{where}.sigma", "sigma", data["sigma"])
    return PerturbationSpec(sigma=sigma)


def intervention_value(where: str, key: str, raw: Any) -> float:
    """lamb and sigma >= 0 (0: off for that run); alpha in [0, 1)."""
    value = check.number(where, raw)
    if key == "alpha":
        if not 0 <= value < 1:
            raise SpecError(where, f"must be in [0, 1), got {value:g}", "use an EMA momentum such as 0.98")
    else:
        check.at_least(where, value, 0)
    return value


def resolve(training: Any, extra: tuple[tuple[str, tuple], ...]) -> Any:
    """Fill an intervention's strength from its default unless the grid sweeps it, refuse one set
    in both places, and require the section an axis sweeps (it says which filter)."""
    swept = {name for name, _ in extra}
    for axis in sorted(swept & set(INTERVENTION_AXES)):
        _, section, key = axis.split(".")
        value = getattr(training, section)
        if value is None:
            example = "grokfast: {filter: ema}" if section == "grokfast" else "perturbation: {}"
            raise SpecError(f"grid.{axis}", f"training.{section} is not set",
                            f"add '{example}' under training (its {key} then comes from this axis)")
        if key == "alpha" and value.filter != "ema":
            raise SpecError(f"grid.{axis}", f"filter {value.filter} has no alpha", "sweep alpha with filter: ema")
        if getattr(value, key) is not None:
            raise SpecError(f"grid.{axis}", f"training.{section} also sets {key}",
                            f"set it in one place: remove training.{section}.{key} or the axis")
    grokfast, perturbation = training.grokfast, training.perturbation
    if grokfast is not None:
        defaults = {"lamb": GROKFAST_LAMB[grokfast.filter], "alpha": GrokfastSpec.alpha if grokfast.filter == "ema" else None}
        grokfast = dataclasses.replace(grokfast, **{
            key: default for key, default in defaults.items()
            if getattr(grokfast, key) is None and f"training.grokfast.{key}" not in swept})
    if perturbation is not None and perturbation.sigma is None and "training.perturbation.sigma" not in swept:
        raise SpecError("training.perturbation.sigma", "missing",
                        "give the noise scale, e.g. sigma: 0.1, or sweep grid.training.perturbation.sigma")
    return dataclasses.replace(training, grokfast=grokfast, perturbation=perturbation)


def intervention_axis(where: str, key: str, raw: Any) -> tuple[float, ...]:
    """An intervention's strength swept per run (``training.grokfast.lamb``, ...)."""
    if key not in INTERVENTION_AXES:
        raise SpecError(where, f"{key!r} cannot be a grid axis", f"sweep one of {', '.join(INTERVENTION_AXES)}")
    values = axis_values(where, raw)
    if len(set(values)) != len(values):
        raise SpecError(where, f"repeated values {values}", "list each value once")
    field_name = key.rpartition(".")[2]
    for i, v in enumerate(values):
        intervention_value(f"{where}[{i}]" if isinstance(raw, (list, tuple)) else where, field_name, v)
    return tuple(values)
