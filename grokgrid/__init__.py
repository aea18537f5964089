"""grokgrid: map phase diagrams of grokking (comprehension, grokking, memorization, confusion).

A sweep spec expands into runs, trained as Ray Tune trials; per-step metrics land in Parquet,
a classifier labels each run, and a self-contained HTML report shows the phase diagram.
"""

__version__ = "0.1.0"
