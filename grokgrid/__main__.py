"""`python -m grokgrid` is the `grokgrid` command."""

from grokgrid.cli import app

app(prog_name="grokgrid")
