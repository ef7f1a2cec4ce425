"""Retry delays and a small circuit breaker, so a dead server fails fast in loops."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from ollama_ops.errors import ServerUnreachable


def backoff_delays(retries: int, *, base: float = 0.05, cap: float = 1.0,
                   rng: random.Random | None = None) -> Iterator[float]:
    """Full-jitter exponential backoff: `retries` delays, each uniform in [0, min(cap, base·2^i)]."""
    rng = rng or random.Random()
    for attempt in range(retries):
        yield rng.uniform(0, min(cap, base * (2**attempt)))


class CircuitBreaker:
    """Open after `failures` consecutive connection failures; let one call through after `cooldown` seconds."""

    def __init__(self, failures: int = 3, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def check(self, target: str) -> None:
        """Raise ServerUnreachable at once while the breaker is open."""
        if self.state == "open":
            wait = self.cooldown - (self.clock() - (self.opened_at or 0))
            raise ServerUnreachable(
                f"cannot connect to Ollama at {target}: {self.consecutive} connection failures in a row",
                hint=f"not retrying for {wait:.1f}s; is it running? try `sollama start`")

    def record_success(self) -> None:
        self.consecutive = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.threshold:
            self.opened_at = self.clock()
