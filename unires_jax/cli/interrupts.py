"""SIGTERM handled as Ctrl-C by the long-running commands (restore, eval, demo)."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM (a preempted job, `kill`) raises KeyboardInterrupt as Ctrl-C does, so the command
    stops cleanly: the current image is abandoned and what is complete is kept."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
