"""`python -m grokgrid` is the `grokgrid` command."""

from grokgrid.cli import run

run()
