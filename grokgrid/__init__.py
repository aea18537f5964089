"""grokgrid: map phase diagrams of grokking (comprehension, grokking, memorization, confusion).

A sweep spec expands into runs, trained as Ray Tune trials; per-step metrics land in Parquet,
a classifier labels each run, and a self-contained HTML report shows the phase diagram.

The Python API (api.py) is re-exported here and imported on first use, so that ``import
grokgrid`` stays cheap (the console script guards Ctrl-C before the heavy imports)::

    import grokgrid
    s = grokgrid.open("results/quickstart")
    s.labels, s.runs, s.curves(run_id), s.status()
"""

__version__ = "0.1.0"

# Not "report": grokgrid.report is the report package; write one with grokgrid.open(...).report().
_API = ("open", "Sweep", "Status", "Listing", "Verification", "run_sweep", "resume_sweep", "refine_sweep", "refine_plan", "status", "classify", "verify", "ls", "load",
        "figure", "track")
__all__ = ["__version__", *_API, "Refused", "SweepInterrupted", "Reporter", "Quiet"]


def __getattr__(name: str):
    if name in _API:
        from grokgrid import api

        return getattr(api, name)
    if name == "Refused":
        from grokgrid.refusal import Refused

        return Refused
    if name in ("SweepInterrupted", "Reporter", "Quiet"):
        from grokgrid import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'grokgrid' has no attribute {name!r}")
