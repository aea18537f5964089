"""One driver per sweep: an exclusive ``flock`` on ``results/<sweep>/.lock``.

The driver (``grokgrid sweep`` / ``grokgrid resume``) holds the lock for its whole lifetime. The
kernel releases a ``flock`` when the process dies, however it dies (SIGKILL and a lost machine
included), so a killed driver never leaves a stale lock behind: the next ``resume`` just takes
it. The file holds who has it (pid, host, start time, command) so that a refused driver can say
whom to wait for. Readers (``status``, ``classify``, ``report``) never take it.

On release the file is removed, so a finished sweep's folder holds no lock file. Removing a
lock file races with a driver that opened it just before: ``acquire`` therefore checks, once it
holds the lock, that the file it locked is still the one at the path, and retries otherwise.

Results under a filesystem URI (s3://...) have no local folder to lock: the CLI locks a folder of
the driver machine's cache named after the URI instead, which stops a second driver on the same
machine (not one on another machine; README "Running on a cluster").

Standard library only (POSIX ``fcntl``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a sweep's lock (as written in the lock file; fields may be unknown)."""

    pid: int | None
    host: str
    since: str
    command: str

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "an unknown pid"
        return f"grokgrid {pid} on host {self.host or 'unknown'} since {self.since or 'an unknown time'}"


class SweepLocked(RuntimeError):
    """Another live driver holds the sweep's lock."""

    def __init__(self, sweep_dir: Path | str, holder: Holder):
        self.sweep_dir, self.holder = sweep_dir, holder
        super().__init__(f"{sweep_dir} is in use by {holder.describe()}; wait for it or stop it")


def _read_holder(fd: int) -> Holder:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 64 * 1024).decode("utf-8", errors="replace")
        data = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        host=str(data.get("host", "")),
        since=str(data.get("since", "")),
        command=" ".join(str(data.get("command", "")).split()),
    )


class SweepLock:
    """``with SweepLock(sweep_dir, "grokgrid resume ..."):`` or ``acquire()`` / ``release()``.

    ``sweep_dir`` is the local folder that holds the lock file; ``label`` names the sweep in
    messages when that is not its results folder (results under a filesystem URI)."""

    def __init__(self, sweep_dir: str | os.PathLike, command: str | None = None, label: str | None = None):
        self.sweep_dir = Path(sweep_dir)
        self.label = label or str(self.sweep_dir)
        self.path = self.sweep_dir / LOCK_FILE
        self.command = command if command is not None else " ".join(["grokgrid", *sys.argv[1:]])
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "SweepLock":
        """Take the lock now or raise SweepLocked (never waits). Creates the sweep folder."""
        if self._fd is not None:
            return self
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise SweepLocked(self.label, holder) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # a releasing driver removed the file we locked: lock the new one
        self._fd = fd
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": self.command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds without the note of who holds it
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(sweep_dir: str | os.PathLike) -> Holder | None:
    """Who holds the sweep's lock now, or None when no live driver does. Read-only: creates
    nothing (it tries the lock for an instant on an existing file, which takes nothing from a
    holder)."""
    path = Path(sweep_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
