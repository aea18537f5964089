"""The building blocks of spec validation: SpecError and the checks of one value or mapping.

Every check names the field it reads (``where``, e.g. ``training.steps``) so that a failure is
one line, '<field>: <what is wrong>; <how to fix it>'. spec.py and each task's and model's spec
class use them. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Mapping, Sequence


class SpecError(ValueError):
    """A spec problem, as one line: '<field>: <what is wrong>; <how to fix it>'."""

    def __init__(self, where: str, problem: str, fix: str):
        # One line whatever the input (a key with a newline is escaped where it is named).
        problem, fix = (" ".join(text.split()) for text in (problem, fix))
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}; {fix}")


def number(where: str, value: Any) -> float:
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


def integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError(where, f"expected an integer, got {value!r}", "write a whole number such as 100")
    whole = number(where, value)
    if whole != int(whole):
        raise SpecError(where, f"expected an integer, got {value!r}", "write a whole number such as 100")
    return int(whole)


def at_least(where: str, value: float, low: float, *, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise SpecError(where, f"must be {relation} {low:g}, got {value:g}", f"use a value {relation} {low:g}")


def choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(where, f"unknown value {value!r}", f"use one of {', '.join(choices)}")
    return value


def mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(where, f"expected a mapping, got {type(value).__name__}", "write 'key: value' lines under it")
    for key in value:
        if not isinstance(key, str):
            raise SpecError(where, f"key {key!r} is not a string", "use field names as keys")
    return value


def reject_unknown(where: str, data: Mapping[str, Any], known: type | Sequence[str]) -> None:
    """A key that is not a field of the dataclass ``known`` (or not in the names ``known``) is an error."""
    if isinstance(known, type):
        known = [f.name for f in fields(known)]
    for key in data:
        if key not in known:
            prefix = f"{where}." if where else ""
            shown = key if key.isprintable() else repr(key)[1:-1]
            raise SpecError(f"{prefix}{shown}", "unknown key", f"valid keys are {', '.join(known)}")


def boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"expected true or false, got {value!r}", "write true or false")
    return value


def only_parameters_of(section: str, kind: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key != "name" and key not in allowed:
            shown = key if key.isprintable() else repr(key)[1:-1]
            raise SpecError(
                f"{section}.{shown}",
                f"not a parameter of {section} {kind}",
                f"its parameters are {', '.join(allowed) or 'none'}",
            )


def shown_key(key: Any) -> str:
    """A key as a field name in a one-line message (a newline in it is escaped)."""
    text = key if isinstance(key, str) else repr(key)
    return text if text.isprintable() else repr(text)[1:-1]


def folder_path(where: str, value: Any) -> str:
    """A path to a folder, kept as written (a relative one is resolved when a sweep starts, not
    here: reading a spec never depends on the current directory or on what is on disk)."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(where, f"expected a folder path, got {value!r}", "write a path such as data/mnist")
    if not value.isprintable():
        raise SpecError(where, f"the path {value!r} holds a control character", "write the path on one line")
    return value
