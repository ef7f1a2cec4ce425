"""Retry delays, `Retry-After`, and a per-host circuit breaker, so a dead server fails fast in loops."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from ollama_ops.client.protocol import RETRY_STATUSES
from ollama_ops.errors import ServerUnreachable

RETRY_AFTER_CAP = 30.0  # never sleep longer than this on a server's say-so


def backoff_delays(retries: int, *, base: float = 0.05, cap: float = 1.0,
                   rng: random.Random | None = None) -> Iterator[float]:
    """Full-jitter exponential backoff: `retries` delays, each uniform in [0, min(cap, base·2^i)]."""
    rng = rng or random.Random()
    for attempt in range(retries):
        yield rng.uniform(0, min(cap, base * (2**attempt)))


def retry_after_seconds(value: str | None, *, now: datetime | None = None,
                        cap: float = RETRY_AFTER_CAP) -> float | None:
    """A `Retry-After` header (delta-seconds or an HTTP date) as seconds to wait, capped; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(cap, seconds))


class CircuitBreaker:
    """Closed → open after `failures` consecutive failures (connection refused, connect or read timeouts);
    after `cooldown` seconds half-open: exactly one trial call goes through, the others fail fast; the trial's
    success closes the breaker, its failure opens it again. Thread-safe; `state` is readable at any time."""

    def __init__(self, failures: int = 3, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trial_started: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """"closed", "open" or "half-open"."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def check(self, target: str) -> None:
        """Raise ServerUnreachable at once while open, or while half-open with the trial call already out."""
        with self._lock:
            state = self.state
            if state == "closed":
                return
            now = self.clock()
            if state == "half-open" and (self.trial_started is None or now - self.trial_started >= self.cooldown):
                self.trial_started = now  # this call is the trial (a lost trial is replaced after a cool-down)
                return
            wait = max(0.0, self.cooldown - (now - (self.opened_at or 0))) if state == "open" else self.cooldown
        raise ServerUnreachable(
            f"cannot connect to Ollama at {target}: {self.consecutive} connection failures in a row",
            hint=f"not retrying for {wait:.1f}s; is it running? try `sollama start`")

    def record_success(self) -> None:
        with self._lock:
            self.consecutive = 0
            self.opened_at = None
            self.trial_started = None

    def record_failure(self) -> None:
        with self._lock:
            self.consecutive += 1
            if self.consecutive >= self.threshold:
                self.opened_at = self.clock()
                self.trial_started = None


_BREAKERS: dict[tuple[str, int, float], CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(base_url: str, failures: int = 3, cooldown: float = 5.0) -> CircuitBreaker:
    """The process-wide breaker of one host (one per base URL and settings), shared by every client of it."""
    key = (base_url.rstrip("/"), failures, cooldown)
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(key)
        if breaker is None:
            breaker = _BREAKERS[key] = CircuitBreaker(failures, cooldown)
        return breaker


class RetryPolicy:
    """The retry bookkeeping of one call, for both clients (pure: it decides, the caller sleeps and sends).

    After a connection failure (nothing was sent) `after_refusal()` gives the next backoff delay, or None to give
    up (retries spent, the breaker opened, or the delay would pass the call's deadline). After an answer's head,
    `after_answer(status, retry_after)` gives the delay before sending again (429/503 only, honouring
    `Retry-After`), or None to take that answer. Once a stream's first byte came nobody asks it again: nothing is
    retried after that. `attempts` counts the sends so far."""

    __slots__ = ("attempts", "breaker", "busy_delays", "clock", "deadline", "delays")

    def __init__(self, retries: int, busy_retries: int, breaker: CircuitBreaker, deadline: float | None = None,
                 *, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.delays = backoff_delays(retries, rng=rng)
        self.busy_delays = backoff_delays(busy_retries, base=0.25, cap=5.0, rng=rng)
        self.breaker = breaker
        self.deadline = deadline
        self.clock = clock
        self.attempts = 1

    def _within(self, delay: float | None) -> float | None:
        if delay is None or (self.deadline is not None and self.clock() + delay >= self.deadline):
            return None
        self.attempts += 1
        return delay

    def after_refusal(self) -> float | None:
        self.breaker.record_failure()
        delay = next(self.delays, None)
        if self.breaker.state == "open":
            return None
        return self._within(delay)

    def after_answer(self, status: int, retry_after: str | None) -> float | None:
        self.breaker.record_success()
        if status not in RETRY_STATUSES:
            return None
        delay = next(self.busy_delays, None)
        if delay is None:
            return None
        return self._within(retry_after_seconds(retry_after) or delay)
