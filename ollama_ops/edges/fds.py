"""File descriptors: a bench at high concurrency needs one socket per request in flight.

The usual soft limit (1024) is far below the usual hard limit, so `ensure_open_files` raises the soft limit as far
as the run needs (any process may, up to its hard limit) and says before the first request when even the hard
limit is too low, instead of letting requests fail with EMFILE half-way through the run.
"""

from __future__ import annotations

import os

from ollama_ops.errors import LocalLimit

MARGIN = 32  # the store, logs, the event loop's own descriptors, DNS


def open_descriptors() -> int:
    """How many descriptors this process has open now (16 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def ensure_open_files(connections: int, *, flag: str = "--concurrency") -> int:
    """Make room for `connections` more sockets; returns the soft limit now in force. Raises LocalLimit naming
    `flag` when the hard limit cannot hold them."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = open_descriptors() + connections + MARGIN
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise LocalLimit(f"{flag} {connections} needs about {needed} open files, but this process may open at most "
                         f"{hard} (`ulimit -Hn`)", hint=f"lower {flag}, or raise the hard limit")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (OSError, ValueError) as exc:
        raise LocalLimit(f"{flag} {connections} needs about {needed} open files; the limit is {soft} and raising it "
                         f"failed: {exc}", hint=f"lower {flag}, or run `ulimit -n {needed}` first") from None
    return needed
