"""When a bench run passes as a CI step (pure): the failure budget of `--max-failures N|P%`, and the verdict.

A gate fails closed: by default any failed request fails the run; `--max-failures 3` allows three, `5%` allows
that share of the measured requests. A run without a single successful request, or without any measured request,
never passes, whatever the budget: there is nothing it could vouch for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class FailureBudget:
    """How many failed requests a run may have: a count, or a percentage of its measured requests."""

    count: int = 0
    percent: float | None = None  # when set, the count is not used

    def __str__(self) -> str:
        return str(self.count) if self.percent is None else f"{self.percent:g}%"

    def exceeded(self, failed: int, total: int) -> bool:
        """Whether `failed` of `total` measured requests is more than the budget allows."""
        if self.percent is None:
            return failed > self.count
        return failed * 100 > self.percent * total


def parse_max_failures(text: str) -> FailureBudget:
    """'0', '3' (requests) or '5%', '2.5%' (of the measured requests) → FailureBudget. Raises ValueError."""
    raw = text.strip()
    if raw.endswith("%"):
        try:
            percent = float(raw[:-1].strip())
        except ValueError:
            percent = math.nan
        if not (math.isfinite(percent) and 0 <= percent <= 100):
            raise ValueError(f"takes a percentage from 0% to 100%, got {text!r:.40}")
        return FailureBudget(percent=percent)
    if not _COUNT.fullmatch(raw):
        raise ValueError(f"takes a number of requests (0, 3) or a percentage (5%), got {text!r:.40}")
    return FailureBudget(count=int(raw))


def run_failure(ok: int, failed: int, errors: Mapping[str, int], budget: FailureBudget) -> str | None:
    """Why a finished run fails its gate, or None when it passes. `errors`: failed requests by kind."""
    total = ok + failed
    kinds = f" ({', '.join(f'{kind} ×{n}' for kind, n in errors.items())})" if errors else ""
    if total == 0:
        return "no request was measured"
    if ok == 0:
        return f"every request failed: {failed} of {total}{kinds}"
    if budget.exceeded(failed, total):
        allows = "none" if budget.percent is None and budget.count == 0 else str(budget)
        return f"{failed} of {total} requests failed{kinds}; --max-failures allows {allows}"
    return None
