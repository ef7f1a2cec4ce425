"""A per-host circuit breaker and the retry-once rule (pure; the clock is passed in).

A host that refuses connections, times out before its first byte, resets before answering, or answers 502/503 is
**ejected** (the breaker opens) after `threshold` such failures in a row. An ejected host gets no requests; the
poller probes it (GET /api/version) once its cooldown has passed: a good answer puts it back, a bad one doubles the
cooldown (up to `max_cooldown`). A request that failed that way **before any byte reached the client** is retried
once on another host; after the first byte nothing is replayed (the client gets an error line instead).
"""

from __future__ import annotations

from dataclasses import dataclass

# the failures that mean "this host cannot serve now" (not "this request is bad")
REFUSED, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, RESET = "refused", "connect-timeout", "first-byte-timeout", "reset"
HOST_FAILURES = frozenset({REFUSED, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, RESET})
HOST_FAILURE_STATUSES = frozenset({502, 503})

CLOSED, OPEN = "closed", "open"


def host_failure(status: int | None = None, error: str | None = None) -> bool:
    """Whether an upstream outcome counts against the host: one of HOST_FAILURES, or HTTP 502/503. Other
    statuses (400, 404, 500 load failures) are the request's own fault or the model's and say nothing about the
    host's availability."""
    if error is not None:
        return error in HOST_FAILURES
    return status in HOST_FAILURE_STATUSES


def retry_once(attempt: int, client_got_bytes: bool, status: int | None = None, error: str | None = None) -> bool:
    """Retry on another host: only after the first attempt (attempt == 1), only when nothing has reached the
    client yet, and only for a host failure."""
    return attempt == 1 and not client_got_bytes and host_failure(status, error)


@dataclass
class Breaker:
    """One host's breaker. `allow()` gates requests; `probe_due(now)` tells the poller when to try an ejected
    host; `success`/`failure` record outcomes (from requests and from probes alike)."""

    threshold: int = 1
    cooldown: float = 2.0
    max_cooldown: float = 30.0
    state: str = CLOSED
    failures: int = 0  # consecutive host failures
    opened_at: float = 0.0
    current_cooldown: float = 0.0
    ejections: int = 0  # how many times it opened (a metric)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("need 0 < cooldown <= max_cooldown")
        self.current_cooldown = self.current_cooldown or self.cooldown

    @property
    def up(self) -> bool:
        return self.state == CLOSED

    def allow(self) -> bool:
        """Whether a request may go to this host now (an ejected host takes none until a probe succeeds)."""
        return self.state == CLOSED

    def probe_due(self, now: float) -> bool:
        return self.state == OPEN and now >= self.opened_at + self.current_cooldown

    def success(self) -> None:
        """A good answer (a request's first byte, or a probe): the host is in."""
        self.state, self.failures, self.current_cooldown = CLOSED, 0, self.cooldown

    def failure(self, now: float) -> bool:
        """A host failure; returns True when this one ejected the host (or kept it out, for a failed probe)."""
        if self.state == OPEN:
            if now >= self.opened_at + self.current_cooldown:  # the probe failed: stay out, back off
                self.current_cooldown = min(self.max_cooldown, self.current_cooldown * 2)
                self.opened_at = now
                return True
            return False
        self.failures += 1
        if self.failures >= self.threshold:
            self.state, self.opened_at, self.current_cooldown = OPEN, now, self.cooldown
            self.ejections += 1
            return True
        return False

    def retry_in(self, now: float) -> float:
        """Seconds until the next probe (0 when closed or due)."""
        if self.state == CLOSED:
            return 0.0
        return max(0.0, self.opened_at + self.current_cooldown - now)
