"""SIGTERM ends a command the way Ctrl-C does: the same code paths run (a bench stops gracefully and keeps its
run, generate records its usage row, chat keeps the partial answer), a message says so, and the exit status is
130 (ExitCode.INTERRUPTED).

The handler turns SIGTERM into SIGINT for this process (so asyncio's own SIGINT handler, where one is installed,
sees it too), or raises KeyboardInterrupt directly where SIGINT is ignored (a background job of a non-interactive
shell). `terminated()` tells the error boundary and the chat loop that it was a SIGTERM (then chat exits instead
of asking for a second Ctrl-C).
"""

from __future__ import annotations

import signal
from types import FrameType

_seen = {"sigterm": False}


def terminated() -> bool:
    """True once this process got SIGTERM."""
    return _seen["sigterm"]


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _seen["sigterm"] = True
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)


def install() -> None:
    """Make SIGTERM end this process like Ctrl-C (called by the console-script entry point only)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
