"""Weights & Biases: one W&B run per grokgrid run, in the project asked for (default $WANDB_PROJECT,
else ``grokgrid``), grouped by sweep (W&B's ``group``), named by the run id.

A run's config holds the hyperparameters and fixed spec fields (and grokgrid.sweep, run_id,
pack_id), its history every per-step metric at its step, its summary the label (phase, detail,
reason) and the outcome numbers (t_train, t_val, ...); the phase is also a W&B tag. W&B's own
settings decide online or offline (WANDB_MODE) and the local folder (WANDB_DIR).

Twice the same run: each W&B run's id is made from the sweep and run id, so an export to the
same project resumes that W&B run (``resume="allow"``) rather than starting a second one, and a
ledger beside W&B's local files (``<WANDB_DIR>/wandb/grokgrid/<project>.json``: run id -> digest)
lets an export skip the runs it already sent unchanged, offline runs too (which have no server
to ask). What W&B does with history steps sent again to a resumed run is W&B's: it keeps the
steps it has.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable

from grokgrid.refusal import Refused
from grokgrid.tracking import Exported, Target
from grokgrid.tracking.records import TrackedRun

DEFAULT_PROJECT = "grokgrid"
ID_MAX = 64  # W&B run ids: letters, digits, '-' and '_', at most 64


def project_of(target: Target) -> tuple[str | None, str]:
    """(entity or None, project) from ``[ENTITY/]PROJECT``, $WANDB_PROJECT or the default."""
    where = target.where or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
    entity, _, project = where.rpartition("/")
    if not project or "/" in entity:
        raise Refused(f"{target.option} {target}: give the W&B project as PROJECT or ENTITY/PROJECT")
    return entity or None, project


def check(target: Target) -> None:
    project_of(target)


def wandb_id(sweep: str, run_id: str) -> str:
    """A stable W&B run id: the sweep's name (made safe) and the run id; a name too long for
    W&B's limit is shortened with a hash of it, so two sweeps never share ids."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", sweep)
    if len(safe) + len(run_id) + 1 > ID_MAX:
        safe = safe[: ID_MAX - len(run_id) - 10] + "-" + hashlib.sha256(sweep.encode()).hexdigest()[:8]
    return f"{safe}-{run_id}"


def local_dir() -> Path:
    """Where W&B keeps its local files (it adds wandb/): $WANDB_DIR, else here. Read at each
    export and handed to wandb.init, since wandb reads its environment once per process."""
    return Path(os.environ.get("WANDB_DIR") or ".").expanduser().resolve()


def _mode() -> str | None:
    """WANDB_MODE as wandb.init takes it (read at each export, as local_dir); None: W&B decides."""
    mode = (os.environ.get("WANDB_MODE") or "").strip().lower()
    return "offline" if mode == "dryrun" else (mode if mode in ("online", "offline", "disabled", "shared") else None)


def ledger_path(entity: str | None, project: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{entity}--{project}" if entity else project)
    return local_dir() / "wandb" / "grokgrid" / f"{name}.json"


def _read_ledger(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_ledger(path: Path, ledger: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True))
    os.replace(tmp, path)


def export(target: Target, runs: list[TrackedRun], say: Callable[[str], None]) -> Exported:
    import wandb

    entity, project = project_of(target)
    where = f"{entity}/{project}" if entity else project
    ledger_file = ledger_path(entity, project)
    ledger = _read_ledger(ledger_file)
    created = replaced = unchanged = 0
    for run in runs:
        key = wandb_id(run.sweep, run.run_id)
        if ledger.get(key) == run.digest:
            unchanged += 1
            continue
        try:
            _log_run(wandb, entity, project, key, run)
        except (wandb.errors.Error, OSError) as exc:
            raise Refused(f"{target.option} {target}: W&B refused ({' '.join(str(exc).split())[:300]}); "
                          "check `wandb login` or set WANDB_MODE=offline") from None
        replaced, created = (replaced + 1, created) if key in ledger else (replaced, created + 1)
        ledger[key] = run.digest
        _write_ledger(ledger_file, ledger)
    return Exported(target, where, created, replaced, unchanged)


def _log_run(wandb, entity: str | None, project: str, key: str, run: TrackedRun) -> None:
    settings = wandb.Settings(silent=True, console="off", save_code=False, disable_git=True, x_disable_stats=True,
                              x_disable_machine_info=True)
    config = {**run.params, "grokgrid.sweep": run.sweep, "grokgrid.run_id": run.run_id, "grokgrid.pack_id": run.pack_id}
    tags = [str(run.outcome["phase"])] if "phase" in run.outcome else []
    active = wandb.init(entity=entity, project=project, group=run.sweep, name=run.name, id=key, config=config,
                        tags=tags, job_type="grokgrid", resume="allow", reinit="create_new", settings=settings,
                        dir=str(local_dir()), mode=_mode())
    try:
        for step, row in run.rows():
            active.log(row, step=step)
        active.summary.update({**run.outcome, "grokgrid.digest": run.digest})
    finally:
        active.finish()


__all__ = ["check", "export", "ledger_path", "local_dir", "project_of", "wandb_id"]
