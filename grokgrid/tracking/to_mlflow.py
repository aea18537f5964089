"""MLflow: one experiment per sweep (named like the sweep), one MLflow run per grokgrid run,
named by its run id.

A run gets the hyperparameters and fixed spec fields as params, every per-step metric as a
metric history at its step, the outcome numbers (t_train, t_val, gap, final_val_acc, ...) as
single metrics at the run's last step, and as tags its identity (grokgrid.sweep, grokgrid.run_id,
grokgrid.pack_id, grokgrid.digest) and label (phase, detail, reason). Runs are found again by
the grokgrid.run_id tag: one there with the same digest is left as it is, one with another is
deleted (MLflow keeps deleted runs until ``mlflow gc``) and logged afresh, since a metric history
cannot be rewritten in place. Runs of the experiment that grokgrid did not log are not touched.

A local folder (or file: URI) is MLflow's file store. MLflow 3 has put that store in
maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE is set; asking grokgrid for a
folder is taken as that opt-in, for the export only. A team's server (http://...) or database
URI needs nothing of the kind.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

from grokgrid.refusal import Refused
from grokgrid.tracking import Exported, Target
from grokgrid.tracking.records import TrackedRun

DEFAULT_FOLDER = "mlruns"
# MLflow's per-request limits of log_batch (the REST API refuses larger batches).
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
PARAM_VALUE_MAX = 6000


def tracking_uri(where: str | None) -> str:
    """The URI asked for, else $MLFLOW_TRACKING_URI, else the file store ./mlruns; a local
    folder (or a relative file: URI) becomes an absolute file: URI, since MLflow would resolve
    a relative one against whatever folder it runs in later."""
    uri = where or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_FOLDER
    if uri.startswith("file:"):
        return Path(urlparse(uri).path or ".").expanduser().resolve().as_uri()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) or uri == "databricks":  # a server, database, ...
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def check(target: Target) -> None:
    """Any text may be a tracking URI (MLflow checks it when connecting): nothing to refuse here."""
    tracking_uri(target.where)


@contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses a file store without MLFLOW_ALLOW_FILE_STORE: set it while exporting to
    one (and only then), as it was afterwards."""
    if not uri.startswith("file:") or os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def export(target: Target, runs: list[TrackedRun], say: Callable[[str], None]) -> Exported:
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(target.where)
    if not runs:
        return Exported(target, uri, 0, 0, 0)
    try:
        with _file_store_allowed(uri):
            created, replaced, unchanged = _export(uri, runs)
    except MlflowException as exc:
        first = " ".join(str(exc).split())[:300]
        raise Refused(f"{target.option} {target}: MLflow refused ({first}); check the tracking URI") from None
    return Exported(target, uri, created, replaced, unchanged)


def _export(uri: str, runs: list[TrackedRun]) -> tuple[int, int, int]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, runs[0].sweep)
    existing = _existing_runs(client, experiment_id)
    created = replaced = unchanged = 0
    for run in runs:
        before = existing.get(run.run_id, [])
        if len(before) == 1 and before[0].data.tags.get("grokgrid.digest") == run.digest:
            unchanged += 1
            continue
        for old in before:
            client.delete_run(old.info.run_id)
        _log_run(client, experiment_id, run)
        replaced, created = (replaced + 1, created) if before else (replaced, created + 1)
    return created, replaced, unchanged


def _experiment(client, sweep: str) -> str:
    found = client.get_experiment_by_name(sweep)
    if found is None:
        return client.create_experiment(sweep, tags={"grokgrid.sweep": sweep})
    if found.lifecycle_stage == "deleted":  # deleted in the UI: bring it back rather than fail
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def _existing_runs(client, experiment_id: str) -> dict[str, list]:
    """grokgrid run id -> the experiment's active MLflow runs tagged with it."""
    out: dict[str, list] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for found in page:
            run_id = found.data.tags.get("grokgrid.run_id")
            if run_id:
                out.setdefault(run_id, []).append(found)
        token = page.token
        if not token:
            return out


def _log_run(client, experiment_id: str, run: TrackedRun) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    tags = {**run.tags(), "mlflow.source.name": "grokgrid"}
    created = client.create_run(experiment_id, run_name=run.name, tags=tags)
    mlflow_run = created.info.run_id
    params = [Param(k, str(v)[:PARAM_VALUE_MAX]) for k, v in run.params.items()]
    metrics = [Metric(name, float(v), now, int(s)) for name, (steps, values) in run.points().items()
               for s, v in zip(steps, values)]
    last = int(run.outcome.get("last_step", run.metrics.index.max() if len(run.metrics) else 0))
    metrics += [Metric(k, float(v), now, last) for k, v in run.outcome.items() if not isinstance(v, str)]
    for i in range(0, len(params), MAX_PARAMS):
        client.log_batch(mlflow_run, params=params[i : i + MAX_PARAMS])
    for i in range(0, len(metrics), MAX_METRICS):
        client.log_batch(mlflow_run, metrics=metrics[i : i + MAX_METRICS])
    client.set_terminated(mlflow_run, status="FINISHED")


__all__ = ["check", "export", "tracking_uri"]
