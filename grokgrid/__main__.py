"""The `grokgrid` command (`python -m grokgrid` and the console script).

Importing the CLI (torch, pandas, pyarrow) takes about a second; a Ctrl-C in that second ends
the command with one line and exit 130 instead of a KeyboardInterrupt traceback, since nothing
has been done yet. Only the standard library is imported before that guard is in place.
"""

import signal

from grokgrid import interrupts


def main() -> None:
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    interrupts.exit_quietly_on_signal(when="before the command started; nothing was done")
    for s, handler in before.items():
        if handler == signal.SIG_IGN:  # a signal the caller ignores (a background job) stays ignored
            signal.signal(s, handler)
    from grokgrid.cli import run

    # From here Python's own handling (click's "Aborted!" for Ctrl-C) applies again until a
    # command routes the signals itself (interrupts.handled).
    for s, handler in before.items():
        signal.signal(s, handler)
    run()


if __name__ == "__main__":
    main()
