"""Benchmark: what a 1,000-run sweep costs in memory and on disk (issue 19).

    .venv/bin/python bench/scale.py                    # the toy model, 25 x 40 lrs, 500 steps
    .venv/bin/python bench/scale.py --steps 200

Runs ``grokgrid sweep`` (local Ray) on the quickstart recipe widened to ``--runs`` runs under
GNU time, and prints the peak resident memory of the largest process (the driver or a Ray
worker: what GNU time reports for a process tree), the results folder's file count and size
(metrics, checkpoints, Tune's state), and the metrics' bytes per logged value. Not a test: the
README's numbers come from it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repr", type=int, default=25, help="representation lrs")
    parser.add_argument("--decoder", type=int, default=40, help="decoder lrs")
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("/usr/bin/time") is None:
        sys.exit("bench/scale.py needs GNU time at /usr/bin/time (apt-get install time)")
    base = yaml.safe_load((ROOT / "sweeps" / "quickstart.yaml").read_text())
    base["name"] = "scale"
    base["training"]["steps"] = args.steps
    base["grid"]["repr_lr"] = {"logspace": [1e-4, 1e-1, args.repr]}
    base["grid"]["decoder_lr"] = {"logspace": [1e-5, 1e-2, args.decoder]}
    with tempfile.TemporaryDirectory(prefix="grokgrid-scale-") as d:
        spec = Path(d) / "scale.yaml"
        spec.write_text(yaml.safe_dump(base))
        command = ["/usr/bin/time", "-v", str(ROOT / ".venv" / "bin" / "grokgrid"), "sweep", str(spec),
                   "--results", str(Path(d) / "results"), "--yes", "--no-report"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stdout[-2000:] + done.stderr[-2000:])
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", done.stderr).group(1)
        folder = Path(d) / "results" / "scale"
        files = [p for p in folder.rglob("*") if p.is_file()]
        metrics = [p for p in files if p.is_relative_to(folder / "metrics")]
        size = sum(p.stat().st_size for p in files)
        metrics_size = sum(p.stat().st_size for p in metrics)
        import pandas as pd

        rows = pd.read_parquet(folder / "metrics")
        values = len(rows) * (len(rows.columns) - 1)  # every column but run_id, which the folder names
        runs = args.repr * args.decoder
        print(f"{runs:,} runs x {args.steps:,} steps (toy model, p = 10): wall {wall}, peak RSS {peak_kb / 1024:,.0f} MiB "
              f"(the largest process)")
        print(f"results folder: {len(files):,} files, {size / 2**20:,.1f} MiB; metrics: {len(metrics):,} files, "
              f"{metrics_size / 2**20:,.2f} MiB for {len(rows):,} rows = {metrics_size / values:.1f} bytes a logged value")


if __name__ == "__main__":
    main()
