"""The one error a grokgrid command or library call answers bad input with.

``Refused`` means: the spec, a path, an option, or the state of a results folder does not let
the call go on, and nothing was written. Its message is one line naming what is wrong and how
to fix it; the CLI prints it as ``error: <message>`` and exits 2, a Python caller catches it.
Standard library only.
"""

from __future__ import annotations


class Refused(Exception):
    """Bad input or a folder a call cannot act on; nothing was written. One-line message."""
