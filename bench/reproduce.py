"""Run the shipped reproductions and write their verdicts as the README's Reproductions table.

Each CPU-size sweep in sweeps/ with an ``expect:`` section (its description says "(CPU
size)"; ``--all`` adds the paper- and cluster-size ones, which need GPUs or hours), or each one
named, is trained afresh on a local Ray (``grokgrid.run_sweep(..., overwrite=True)``), timed, and its claims verified
(``grokgrid.verify``). The table has one row per claim: the claim, its source, the sweep file,
the sweep's wall time on this machine, PASS or FAIL and the measured value.

    python bench/reproduce.py                      # every CPU-size sweep with claims; print the table
    python bench/reproduce.py sweeps/liu_decoder_wd.yaml --readme   # and write it into README.md
    python bench/reproduce.py --collect --readme   # the table from the sweeps already reproduced

``--readme`` replaces the text between the README's reproductions markers, so the table there
is always this script's output, never typed by hand (a sweep not rerun keeps its rows). Each
reproduction leaves ``reproduction.json`` (its wall time and machine) in its results folder;
``--collect`` trains nothing: it verifies those folders again and takes their wall times, so the
sweeps can be reproduced one at a time (or on other machines) and tabulated at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grokgrid  # noqa: E402
from grokgrid.spec import load_spec  # noqa: E402

START, END = "<!-- reproductions:start -->", "<!-- reproductions:end -->"
HEADER = "| claim | source | sweep | CPU wall time | verdict | measured |\n| --- | --- | --- | --- | --- | --- |"


CPU_SIZE = "(CPU size)"  # how a sweep's description marks the size that fits the 2-core machine


def claimed_sweeps(every: bool = False) -> list[Path]:
    """The sweeps in sweeps/ that state claims: the CPU-size ones, or with ``every`` all of them
    (the paper sizes ask for GPUs or run for hours, so a plain rerun on a laptop skips them)."""
    specs = [(p, load_spec(p)) for p in sorted((ROOT / "sweeps").glob("*.yaml"))]
    return [p for p, spec in specs if spec.expect and (every or CPU_SIZE in spec.description)]


MACHINE = f"{os.cpu_count()} CPU cores, no GPU"
RECORD = "reproduction.json"


def reproduce(spec_path: Path, results: Path) -> list[str]:
    """Train the sweep afresh, record its wall time in its folder, verify it; its table rows."""
    started = time.perf_counter()
    sweep = grokgrid.run_sweep(spec_path, results=results, overwrite=True, reporter=grokgrid.Quiet())
    wall = time.perf_counter() - started
    record = {"wall_s": round(wall, 1), "machine": MACHINE, "date": str(date.today())}
    folder = sweep.path.local  # bench/ reproduces on this machine
    temporary = folder / f".{RECORD}.tmp"
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, folder / RECORD)
    return table_rows(spec_path, folder, wall)


def collected(spec_path: Path, results: Path) -> list[str]:
    """The rows of a sweep reproduced earlier: its folder verified again, its recorded wall time."""
    folder = results / load_spec(spec_path).name  # where run_sweep put it
    record_path = Path(folder) / RECORD
    if not record_path.is_file():
        sys.exit(f"{spec_path.name}: no {RECORD} in {folder}; run python bench/reproduce.py {spec_path} first")
    return table_rows(spec_path, folder, json.loads(record_path.read_text())["wall_s"])


def table_rows(spec_path: Path, folder, wall: float) -> list[str]:
    verification = grokgrid.verify(folder)
    name = spec_path.relative_to(ROOT) if spec_path.is_relative_to(ROOT) else spec_path
    rows = []
    for v in verification.verdicts:
        cells = [v.claim, v.source or "", f"`{name}`", f"{wall / 60:.1f} min", f"**{'PASS' if v.passed else 'FAIL'}**",
                 f"{v.measured} (expected {v.expected})"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return rows


def update_readme(rows_by_sweep: dict[str, list[str]], machine: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"README.md has no {START} ... {END} markers")
    before, rest = text.split(START, 1)
    old, after = rest.split(END, 1)
    kept: dict[str, list[str]] = {}
    for line in old.splitlines():
        found = re.search(r"\| `(sweeps/[^`]+)` \|", line)
        if found and found.group(1) not in rows_by_sweep:
            kept.setdefault(found.group(1), []).append(line)
    rows = [row for sweep in sorted({**kept, **rows_by_sweep}) for row in {**kept, **rows_by_sweep}[sweep]]
    body = f"\n{HEADER}\n" + "\n".join(rows) + f"\n\nRows last written by `python bench/reproduce.py --readme` on {machine}, {date.today()}.\n"
    readme.write_text(before + START + body + END + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", type=Path, help="sweep specs (default: every sweep in sweeps/ with expect:)")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="results root (default: results/)")
    parser.add_argument("--readme", action="store_true", help="write the rows into README.md's Reproductions table")
    parser.add_argument("--collect", action="store_true", help="train nothing: tabulate the sweeps reproduced earlier")
    parser.add_argument("--all", action="store_true",
                        help="with no specs named: the paper- and cluster-size sweeps too (GPUs, hours), not only the CPU sizes")
    args = parser.parse_args()
    specs = [p.resolve() for p in args.specs] or claimed_sweeps(every=args.all)
    if not specs:
        sys.exit("no sweep in sweeps/ states claims (an expect: section)")
    rows_by_sweep = {}
    for spec_path in specs:
        print(f"{'collecting' if args.collect else 'reproducing'} {spec_path.name} ...", file=sys.stderr, flush=True)
        rows = (collected if args.collect else reproduce)(spec_path, args.results)
        rows_by_sweep[str(spec_path.relative_to(ROOT))] = rows
        print("\n".join(rows), flush=True)
    if args.readme:
        update_readme(rows_by_sweep, MACHINE)


if __name__ == "__main__":
    main()
