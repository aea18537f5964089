"""Build and run the Ray Tune experiment of a sweep: one trial per pack.

Joins a Ray cluster when given an address, else starts a local Ray inside this process (no
separate server step). Tune's own experiment state goes to ``results/<sweep>/tune``; our
metrics are written by the trials themselves (trainable.py), so Tune's loggers are turned off.
Progress reaches the caller through ``on_progress``/``on_pack_done`` callbacks, which keeps
printing in the CLI and Ray here.

Faults: a failed trial (a crash, a lost node) is retried ``resources.max_failures`` times, each
time from its pack's last checkpoint (trainable.py). ``resume`` restores Tune's saved experiment
(``Tuner.restore``) after the driver itself died; ``launch`` is a fresh start and drops Tune's
state of an earlier launch.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

# Set before Ray is imported: Tune reads them at import and trial start.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # we write our own Parquet
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials use absolute paths
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ctrl-C and SIGTERM are the driver's (interrupts.py): Tune's own SIGINT handler would end the
# loop as if the sweep were over, and the driver could not tell an interrupt from the end.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from grokgrid import interrupts, store  # noqa: E402
from grokgrid.grid import Pack  # noqa: E402
from grokgrid.spec import SweepSpec  # noqa: E402
from grokgrid.location import Location, PathLike, as_location  # noqa: E402
from grokgrid.trainable import param_space, train_pack_trial  # noqa: E402


@dataclass(frozen=True)
class PackOutcome:
    pack_id: str
    run_ids: tuple[str, ...]
    ok: bool
    error: str | None = None
    restored_from_step: int | None = None  # the checkpoint step its last attempt started from
    node_id: str | None = None  # the Ray node that trained it (last attempt)


class _StopRequested(Exception):
    """Raised inside Tune's loop to leave it (an Exception: Tune then stops its trials)."""


class TuneStateUnusable(RuntimeError):
    """Tune's saved experiment cannot continue these packs (absent, torn, or of other packs)."""


ProgressFn = Callable[[str, int], None]  # (pack_id, step reached)
PackDoneFn = Callable[[PackOutcome], None]


class ClusterUnusable(RuntimeError):
    """The cluster cannot be reached, or can never run a trial with these resources."""


# Seconds to wait for a TCP answer from --address before calling it unreachable (Ray itself
# retries a dead GCS address for minutes without a word).
CONNECT_TIMEOUT_S = 10.0


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing answers at ``address`` (host:port or ray://host:port)."""
    if address in ("auto", "local"):
        return  # ray.init resolves these itself, and fails at once when there is no cluster
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnusable(f"{address!r} is not host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else " ".join(str(exc).split())
        raise ClusterUnusable(f"nothing answers at {host_port} within {timeout:g} s ({reason})") from None


def connect(address: str | None = None, num_cpus: int | None = None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Join the cluster at ``address`` (or RAY_ADDRESS), else start a local Ray in-process;
    returns False when this process was connected already (nothing done). An address where
    nothing answers within ``timeout`` seconds raises ClusterUnusable."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    if address:
        _probe(address, timeout)
        ray.init(address=address, **kwargs)
    else:
        # "local": always a new Ray of our own. Without it ray.init joins the cluster named in
        # /tmp/ray/ray_current_cluster (left by `ray start` or a test cluster), and a resumed
        # sweep would land on whatever Ray happens to run on the machine.
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    interrupts.reclaim()  # ray.init's own SIGTERM handler would exit without a graceful stop
    return True


def disconnect() -> None:
    """Leave the cluster (a local Ray stops, with every trial it still ran)."""
    if ray.is_initialized():
        ray.shutdown()


def check_resources(resources) -> None:
    """Raise ClusterUnusable when no node of the cluster has the CPUs and GPUs one trial asks
    for: Tune would keep such a trial pending forever. (An autoscaling cluster that adds
    bigger nodes later is not foreseen here: start one such node first.)"""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return
    largest = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
    option = "gpus_per_trial" if resources.gpus_per_trial > largest["GPU"] else "cpus_per_trial"
    raise ClusterUnusable(
        f"resources.{option}: a trial asks for {need['CPU']:g} CPU(s) and {need['GPU']:g} GPU(s), "
        f"but the largest node has {largest['CPU']:g} CPU(s) and {largest['GPU']:g} GPU(s)"
    )


def parallel_slots(resources) -> int:
    """How many trials the cluster can run at once with these per-trial resources."""
    total = ray.cluster_resources()
    if resources.gpus_per_trial > 0:
        slots = int(total.get("GPU", 0) / resources.gpus_per_trial)
    else:
        slots = int(total.get("CPU", 1) / resources.cpus_per_trial)
    if resources.max_concurrent is not None:
        slots = min(slots, resources.max_concurrent)
    return max(1, slots)


# The live handlers of the experiment each callback belongs to, by sweep folder. Tune pickles its
# run config (callbacks included) into the experiment state, and ``Tuner.restore`` unpickles it:
# the restored callback finds the handlers of the driver that restored it here.
_HANDLERS: dict[str, tuple[dict[str, Pack], ProgressFn | None, PackDoneFn | None]] = {}


class _TuneCallback(tune.Callback):
    """Forwards Tune's trial events to the plain callbacks of ``launch`` / ``resume``."""

    def __init__(self, key: str):
        self.key = key

    def __getstate__(self) -> dict:
        # Only the key: the handlers hold the CLI's console and locks and only mean something
        # in the process that registered them.
        return {"key": self.key}

    def __setstate__(self, state: dict) -> None:
        self.key = state.get("key", "")

    def _handlers(self) -> tuple[dict[str, Pack], ProgressFn | None, PackDoneFn | None]:
        return _HANDLERS.get(self.key, ({}, None, None))

    def on_step_begin(self, iteration, trials, **info):
        # A signal asked the driver to stop (interrupts.graceful): leave Tune's loop now.
        # Tune stops the trials on the way out; their checkpoints and rows stay on disk.
        if interrupts.requested() is not None:
            raise _StopRequested()

    @staticmethod
    def _pack_id(trial) -> str:
        return trial.config["pack"]["pack_id"]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        _, on_progress, _ = self._handlers()
        if on_progress is not None:
            on_progress(self._pack_id(trial), int(result.get("step", 0)))

    def _done(self, trial, ok: bool) -> None:
        packs, _, on_pack_done = self._handlers()
        if on_pack_done is None:
            return
        pack = packs.get(self._pack_id(trial)) or Pack.from_dict(trial.config["pack"])
        error = None if ok else _first_line(getattr(trial, "error_file", None))
        result = trial.last_result
        on_pack_done(PackOutcome(pack.pack_id, tuple(r.run_id for r in pack.runs), ok, error, _restored(result), _node(result)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._done(trial, ok=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._done(trial, ok=False)


def _restored(metrics: dict | None) -> int | None:
    step = (metrics or {}).get("restored_from_step")
    return None if step is None or step < 0 else int(step)


def _node(metrics: dict | None) -> str | None:
    return (metrics or {}).get("node_id") or None


def _first_line(error_file: str | None) -> str:
    """The last line of a trial's traceback: the exception itself."""
    if not error_file or not Path(error_file).is_file():
        return "trial failed (no error file)"
    lines = [line for line in Path(error_file).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed"


def _trainable(spec: SweepSpec):
    resources = spec.resources
    return tune.with_resources(train_pack_trial, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


def _result_pack(result, by_id: dict[str, Pack], packs_of_trials: dict[str, Pack]) -> Pack | None:
    if result.config and "pack" in result.config:
        data = result.config["pack"]
        return by_id.get(data["pack_id"]) or Pack.from_dict(data)
    # A trial restored but not rerun has no config in its result (we write no result.json):
    # its trial folder is named after its pack.
    pack_id = Path(str(result.path)).name.removeprefix("pack_")
    return by_id.get(pack_id) or packs_of_trials.get(pack_id)


def _outcomes(results, by_id: dict[str, Pack], packs_of_trials: dict[str, Pack] | None = None) -> list[PackOutcome]:
    outcomes = []
    for result in results:
        pack = _result_pack(result, by_id, packs_of_trials or {})
        if pack is None:
            continue
        error = None if result.error is None else str(result.error).strip().splitlines()[-1]
        outcomes.append(
            PackOutcome(
                pack.pack_id, tuple(r.run_id for r in pack.runs), result.error is None, error,
                _restored(result.metrics), _node(result.metrics),
            )
        )
    return outcomes


def _fit(tuner: tune.Tuner, sweep_dir: Location, by_id: dict[str, Pack], on_progress, on_pack_done, packs_of_trials=None) -> list[PackOutcome]:
    key = sweep_dir.uri
    _HANDLERS[key] = (by_id, on_progress, on_pack_done)
    try:
        with interrupts.graceful():  # raises interrupts.Interrupted when a signal came
            try:
                results = tuner.fit()
            except _StopRequested:
                pass
    finally:
        _HANDLERS.pop(key, None)
    return _outcomes(results, by_id, packs_of_trials)


def launch(
    spec: SweepSpec,
    sweep_dir: PathLike,
    packs: Sequence[Pack],
    *,
    on_progress: ProgressFn | None = None,
    on_pack_done: PackDoneFn | None = None,
) -> list[PackOutcome]:
    """Run every pack as a Tune trial and wait for all; returns one outcome per pack.

    A pack whose results-folder checkpoint exists (an earlier, interrupted attempt at the same
    pack of the same spec) continues from it."""
    sweep_dir = as_location(sweep_dir)
    # A fresh launch: Tune's state from an earlier launch describes other packs.
    (sweep_dir / store.TUNE_DIR).rmtree()
    resources = spec.resources
    threads = max(1, int(resources.cpus_per_trial))
    by_id = {p.pack_id: p for p in packs}
    tuner = tune.Tuner(
        _trainable(spec),
        param_space=param_space(spec.to_dict(), sweep_dir, list(packs), threads),
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=resources.max_concurrent,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=store.TUNE_DIR,
            # Tune's state and checkpoints go to the results folder, wherever it is: a local or
            # NFS path, or the filesystem of a URI (every node reaches it the same way).
            storage_path=sweep_dir.path,
            storage_filesystem=sweep_dir.fs,
            verbose=0,
            callbacks=[_TuneCallback(sweep_dir.uri)],
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            # Only each pack's latest Tune checkpoint is kept (a big pack's state is large and a
            # long run takes many). Tune saves its experiment state only every so often, so a
            # restore after a killed driver may name a checkpoint since rotated away: the
            # trainable then warns and starts from the results folder's own copy, which is
            # always the latest (trainable._restore; test_resume's kill tests). The CLI prunes
            # both once every run is done.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    return _fit(tuner, sweep_dir, by_id, on_progress, on_pack_done)


def _trial_name(trial) -> str:
    return f"pack_{trial.config['pack']['pack_id']}"


def can_resume(sweep_dir: PathLike) -> bool:
    """Is there a saved Tune experiment in the results folder?"""
    path = as_location(sweep_dir) / store.TUNE_DIR
    return tune.Tuner.can_restore(path.path, storage_filesystem=path.fs)


def resume(
    spec: SweepSpec,
    sweep_dir: PathLike,
    packs: Sequence[Pack],
    *,
    on_progress: ProgressFn | None = None,
    on_pack_done: PackDoneFn | None = None,
) -> list[PackOutcome]:
    """Continue the saved Tune experiment of the results folder with ``Tuner.restore``: its
    unfinished and errored trials run again from their last checkpoints, finished ones are kept.

    ``packs`` are the packs still to finish; Tune's state must hold each of them (same pack ids,
    same results folder), else TuneStateUnusable is raised before anything runs and the caller
    launches afresh. Returns one outcome per trial of the experiment (finished ones included).
    """
    sweep_dir = as_location(sweep_dir)
    path = sweep_dir / store.TUNE_DIR
    if not can_resume(sweep_dir):
        raise TuneStateUnusable(f"no Tune experiment in {path}")
    try:
        configs = _saved_trial_configs(path)
        _check_saved_states(path)
        tuner = tune.Tuner.restore(
            path.path, trainable=_trainable(spec), resume_unfinished=True, resume_errored=True, storage_filesystem=path.fs
        )
    except Exception as exc:  # noqa: BLE001 - a torn or foreign experiment state: start afresh
        raise TuneStateUnusable(f"Tune's experiment state in {path} cannot be restored ({' '.join(str(exc).split())})") from exc
    saved = {c["pack"]["pack_id"]: Pack.from_dict(c["pack"]) for c in configs}
    missing = [p.pack_id for p in packs if p.pack_id not in saved]
    if missing:
        raise TuneStateUnusable(f"Tune's experiment state lacks pack(s) {', '.join(missing[:3])}")
    elsewhere = {c.get("sweep_dir") for c in configs} - {sweep_dir.uri}
    if elsewhere:
        raise TuneStateUnusable(f"Tune's experiment state writes to another folder ({sorted(elsewhere)[0]})")
    by_id = {p.pack_id: p for p in packs}
    return _fit(tuner, sweep_dir, by_id, on_progress, on_pack_done, saved)


# The files Tune restores its search algorithm's and its callbacks' state from (the newest by
# name of each kind): ray.tune's BasicVariantGenerator.CKPT_FILE_TMPL and _CallbackList's.
SAVED_STATE_FILES = ("basic-variant-state-*.json", "callback-states-*.pkl")


def _check_saved_states(path: Location) -> None:
    """Raise unless each state file Tune will restore unpickles.

    Tune writes them atomically in its staging folder, then copies them into the results
    folder; a driver killed during that copy leaves a torn file there. Tune's restore then logs
    the error, goes on with a search algorithm that knows none of the saved trials, and the
    resumed sweep crashed (KeyError 'pack', found by test_resume's driver-kill test). Refused
    here, the caller starts afresh instead, and every pack continues from its results-folder
    checkpoint: nothing is lost."""
    import fnmatch

    import ray.cloudpickle as cloudpickle

    entries = path.iterdir()  # Tune's top level only: the packs' folders hold checkpoints
    for pattern in SAVED_STATE_FILES:
        matching = sorted((f for f in entries if fnmatch.fnmatch(f.name, pattern)), key=lambda f: f.name)
        if matching:
            cloudpickle.loads(matching[-1].read_bytes())


def _saved_trial_configs(path: Location) -> list[dict]:
    """The configs of the trials in Tune's saved experiment state (every trial Tune had
    created; one per pack, as param_space grid-searches over packs)."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = logger.level
    logger.setLevel(logging.ERROR)  # it warns about result.json, which we do not write
    try:
        trials = tune.ExperimentAnalysis(path.path, storage_filesystem=path.fs).trials
    finally:
        logger.setLevel(level)
    configs = [t.config for t in trials]
    if not configs or not all(isinstance(c, dict) and "pack" in c for c in configs):
        raise ValueError("its trials have no pack configs")
    return configs
