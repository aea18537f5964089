"""The report's asset files (package data under assets/): the page skeleton, its CSS and
scripts, and the summary's HTML snippets, read with importlib.resources so that HTML, CSS and
JavaScript live in files of their own language rather than in Python strings."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from string import Template

# A snippet starts at a line "<!-- name -->" (a lowercase identifier) and runs to the next one.
_SNIPPET = re.compile(r"^<!-- ([a-z_]+) -->\n", re.MULTILINE)


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of ``assets/<name>``."""
    return resources.files("grokgrid.report").joinpath("assets", name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def snippets(name: str) -> dict[str, Template]:
    """The named snippets of ``assets/<name>``, each a string.Template without its final newline
    (text before the first snippet is a comment for the reader)."""
    parts = _SNIPPET.split(asset(name))[1:]
    return {key: Template(body.rstrip("\n")) for key, body in zip(parts[::2], parts[1::2])}
