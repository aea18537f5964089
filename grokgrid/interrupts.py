"""Ctrl-C (SIGINT) and SIGTERM during a command: stop gracefully once, at once the second time.

A driver command runs inside ``handled()``. Outside the training loop the first signal raises
:class:`Interrupted` at once (nothing is half-done there: every file is written atomically).
Inside ``graceful()`` (Ray Tune's loop, sweep.py) the first signal is only recorded:
the loop sees ``requested()`` at its next step, stops its trials, and the driver then records
from the data on disk which runs finished before it says how to resume. A second signal raises
at once wherever the driver is; the results folder stays resumable either way, since a run
counts as done only when its rows on disk are whole.

The clean-up on the way out (``deferred()``) finishes whatever signals come.
Exit codes follow the shell's convention, 128 + the signal: 130 for SIGINT, 143 for SIGTERM.
Standard library only.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal (KeyboardInterrupt, so no ``except Exception``
    swallows it on the way out)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


class _State:
    def __init__(self) -> None:
        self.received: int | None = None  # the first signal of this command
        self.graceful = False
        self.deferring = False
        self.active = False  # inside handled()
        self.quiet_after = False  # the console script: after a command, a signal exits at once


_state = _State()


def _handler(signum: int, frame: object) -> None:
    first = _state.received is None
    if first:
        _state.received = signum
    if _state.deferring or (first and _state.graceful):
        return  # recorded: the training loop stops at its next step, or the clean-up finishes first
    raise Interrupted(_state.received)


def requested() -> int | None:
    """The signal that asked the command to stop, or None."""
    return _state.received


@contextmanager
def handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM through this module for the block (main thread only; elsewhere
    signals cannot be caught and Python's defaults stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in SIGNALS}
    _state.received, _state.graceful, _state.deferring = None, False, False
    for s in SIGNALS:
        signal.signal(s, _handler)
    _state.active = True
    try:
        yield
    finally:
        if _state.quiet_after:
            exit_quietly_on_signal()  # no window with Python's defaults before the process ends
        else:
            for s, h in before.items():
                signal.signal(s, h)
        _state.received, _state.graceful, _state.deferring, _state.active = None, False, False, False


@contextmanager
def graceful() -> Iterator[None]:
    """Within the block the first signal is only recorded (``requested()``); a signal that
    arrived before it is raised at once."""
    if _state.received is not None:
        raise Interrupted(_state.received)
    _state.graceful = True
    try:
        yield
    finally:
        _state.graceful = False
    if _state.received is not None:
        raise Interrupted(_state.received)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block every signal is only recorded (``requested()``): for the short clean-up
    on the way out (releasing the lock, stopping Ray), which must not be cut in half."""
    before = _state.deferring
    _state.deferring = True
    try:
        yield
    finally:
        _state.deferring = before


def reclaim() -> None:
    """Route the signals through this module again inside ``handled()``: ``ray.init`` installs
    a SIGTERM handler of its own (``sys.exit``), which would skip the graceful stop."""
    if _state.active and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


def quiet_after_commands() -> None:
    """For the console script: once a command leaves ``handled()``, signals end the process at
    once (``exit_quietly_on_signal``) instead of getting Python's defaults back."""
    _state.quiet_after = True


def exit_quietly_on_signal(when: str = "while exiting; the command had finished its work") -> None:
    """From now on SIGINT or SIGTERM ends the process at once with 128 + the signal, saying
    ``interrupted by <signal> <when>`` (for moments with nothing half-done: the last moments of
    a command that has finished its work, or the imports before one starts)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _exit(signum: int, frame: object) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        os.write(2, f"interrupted by {name} {when}\n".encode())
        os._exit(128 + signum)

    for s in SIGNALS:
        signal.signal(s, _exit)
