"""Reading a spec file: the file's text and its YAML, with one-line errors.

``parse_yaml`` is ``yaml.safe_load`` that refuses a key given twice (a SpecError naming it);
``read_spec_file`` returns a spec file's YAML as plain data, or raises a SpecError for a
missing, unreadable or malformed file. Validating the data is spec.py's.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from grokgrid.spec_checks import SpecError, shown_key


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
        return f"{base}.{shown_key(key)}" if base else shown_key(key)

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
    shown = shown_key(str(path))
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
            fix = f"give a YAML file such as {shown_key(str(example))}"
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


def read_spec_file(path: Path) -> Any:
    """The plain data of the YAML spec file at ``path``; every problem is a SpecError (one line)."""
    text = _spec_text(path)
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise SpecError(shown_key(str(path)), f"not valid YAML ({problem})", "fix the YAML syntax") from None
    except RecursionError:  # thousands of nested brackets: no spec is written like that
        raise SpecError(shown_key(str(path)), "not valid YAML (nested too deeply)", "fix the YAML syntax") from None
