"""The base of every task's and model's spec class: a frozen dataclass tagged by ``name`` whose
other fields are its parameters, parsed from a spec section with one-line errors.

A kind declares each parameter with :func:`parameter` (its default, and the bound or choices a
value must meet); the default's type says how a value is read (bool, int, float, or a choice
among strings). A parameter read another way gives its own ``parse`` function. Checks that
span parameters go in the kind's ``check``. Standard library only (spec.py loads it without torch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from grokgrid import spec_checks as check

Kind_ = TypeVar("Kind_", bound="Kind")


def parameter(
    default: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str, Any], Any] | None = None,
    added_later: bool = False,
    location: bool = False,
) -> Any:
    """A kind's parameter: ``minimum`` (>=) or ``above`` (>) bounds a number, ``choices`` a text;
    ``parse(where, value)`` reads a value that is none of a bool, a number or a choice.
    ``added_later``: a parameter that came after runs were already made; written out (and so
    part of run ids) only when it differs from its default, so older runs keep their ids.
    ``location``: where the kind's files are, not what they hold (the mnist task's ``root``):
    written out, but no part of a run id (see Kind.locations)."""
    return field(default=default, metadata={"minimum": minimum, "above": above, "choices": choices, "parse": parse,
                                            "added_later": added_later, "location": location})


def tag(name: str) -> Any:
    """The ``name`` field of a kind: fixed by the class (a ModularSpec is always 'modular')."""
    return field(default=name, init=False)


@dataclass(frozen=True)
class Kind:
    """One kind of a spec section (``section`` is "task" or "model"): its subclasses declare
    ``name = tag("...")`` first, then their parameters, in the order they are written out."""

    section: ClassVar[str]

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def locations(cls) -> tuple[str, ...]:
        """The parameters that say where files are: the same files elsewhere (another copy of
        MNIST, another checkout's relative path) train the same runs, so these stay out of run
        ids and a rerun may change them (grid.recipe, folder.check_new_sweep)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.metadata.get("location"))

    @classmethod
    def from_data(cls: type[Kind_], data: Mapping[str, Any]) -> Kind_:
        """The kind from a section's plain data (its keys already known to be its parameters)."""
        values = {f.name: _read(f"{cls.section}.{f.name}", f, data[f.name]) for f in dataclasses.fields(cls) if f.init and f.name in data}
        kind = cls(**values)
        kind.check()
        return kind

    def check(self) -> None:
        """Checks that span parameters; raise a SpecError naming the field to fix."""

    def written(self) -> dict[str, Any]:
        """The section as a spec writes it: every field but an added-later one at its default."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not (f.metadata.get("added_later") and getattr(self, f.name) == f.default)
        }


def _read(where: str, spec_field: dataclasses.Field, value: Any) -> Any:
    meta = spec_field.metadata
    default = spec_field.default
    if meta["parse"] is not None:
        return meta["parse"](where, value)
    if isinstance(default, bool):
        return check.boolean(where, value)
    if isinstance(default, str):
        return check.choice(where, value, meta["choices"])
    read = check.integer(where, value) if isinstance(default, int) else check.number(where, value)
    if meta["minimum"] is not None:
        check.at_least(where, read, meta["minimum"])
    if meta["above"] is not None:
        check.at_least(where, read, meta["above"], strict=True)
    return read
