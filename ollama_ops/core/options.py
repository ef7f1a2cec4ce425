"""Ollama request options (`--option key=value`), typed by Ollama's own option schema, and the one table of
allowed ranges for every numeric option of every command (pure).

`FLAG_BOUNDS` is the single place a numeric command-line flag is given its range: the CLI applies it to every
INT/FLOAT parameter of every command when the command is built (`ollama_ops.cli.params`), and a test walks all
commands to check that none is missing. `OPTION_BOUNDS` does the same for Ollama's own options (`-o key=value`),
and the shortcut flags (`--temperature`, `--max-tokens`, `--num-ctx`, `--seed`) share their option's bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ollama_ops.errors import UsageError

if TYPE_CHECKING:
    from ollama_ops.core.bench.phases import PhaseSize

INT32_MAX = 2**31 - 1
WEEK_S = 7 * 86400.0  # the longest timeout or wait: beyond it asyncio/httpx timers overflow or nobody waits
MAX_CONCURRENCY = 4096  # as bench.concurrency in the config


@dataclass(frozen=True)
class Bound:
    """The allowed range of one number: low..high, `low` excluded when `above` (e.g. a timeout > 0)."""

    low: float
    high: float
    above: bool = False
    why: str = ""  # said with the upper limit, e.g. "the config's cap"

    def problem(self, value: float) -> str | None:
        """None when `value` is allowed, else what is wrong with it (for a one-line message)."""
        if isinstance(value, float) and math.isnan(value):
            return "must be a finite number, got nan"
        if isinstance(value, float) and math.isinf(value):
            return f"must be a finite number, got {value}"
        if self.above and not value > self.low:
            return f"must be greater than {self.low:g}, got {value:g}"
        if value < self.low:
            return f"must be at least {self.low:g}, got {value:g}"
        if value > self.high:
            reason = f" ({self.why})" if self.why else ""
            return f"must be at most {self.high:g}{reason}, got {value:.6g}"
        return None


def _timeout(low: float = 0.0, *, above: bool = True) -> Bound:
    return Bound(low, WEEK_S, above=above, why="a week")


# Ollama's options (api.Options/api.Runner). Counts are int32 in the runner; num_predict must bound the
# generation (Ollama reads 0 and negative values as "no limit"), so sollama asks for at least one token.
OPTION_BOUNDS: dict[str, Bound] = {
    "num_keep": Bound(-1, INT32_MAX), "seed": Bound(-1, 2**32 - 1), "num_predict": Bound(1, INT32_MAX),
    "top_k": Bound(0, INT32_MAX), "top_p": Bound(0, 1), "min_p": Bound(0, 1), "typical_p": Bound(0, 1),
    "repeat_last_n": Bound(-1, INT32_MAX), "temperature": Bound(0, 100), "repeat_penalty": Bound(0, 100),
    "presence_penalty": Bound(-100, 100), "frequency_penalty": Bound(-100, 100),
    "num_ctx": Bound(4, 2**24, why="16M tokens"), "num_batch": Bound(1, INT32_MAX), "num_gpu": Bound(-1, INT32_MAX),
    "main_gpu": Bound(0, INT32_MAX), "num_thread": Bound(0, 65536),
}

# Every numeric flag of every command: "--flag" for all commands, "command --flag" where one command differs.
# Durations given as text (--keep-alive, --duration, --older-than, --since) are checked by DURATION_FLAGS.
FLAG_BOUNDS: dict[str, Bound] = {
    "--temperature": OPTION_BOUNDS["temperature"],
    "--seed": OPTION_BOUNDS["seed"],
    "--num-ctx": OPTION_BOUNDS["num_ctx"],
    "--max-tokens": OPTION_BOUNDS["num_predict"],
    "--timeout": _timeout(0.01, above=False),  # generate, chat, bench: as generate.timeout / bench.timeout
    "start --timeout": _timeout(0.1, above=False),  # as server.start_timeout
    "stop --timeout": _timeout(0, above=False),  # grace before SIGKILL; 0 = at once
    "restart --timeout": _timeout(0, above=False),
    "cleanup --timeout": _timeout(0, above=False),
    "restart --start-timeout": _timeout(0.1, above=False),
    "status --deep-timeout": _timeout(0.1, above=False),
    "status --wait": _timeout(0, above=False),
    "status --interval": _timeout(0.2, above=False),
    "status --count": Bound(1, INT32_MAX),
    "logs --lines": Bound(0, 10**7),
    "memory --parallel": Bound(1, 2**20),  # a what-if may ask for more than fits; it says "FITS: no"
    "bench --concurrency": Bound(1, MAX_CONCURRENCY, why="as bench.concurrency"),
    "bench --max-concurrency": Bound(1, MAX_CONCURRENCY, why="as bench.concurrency"),
    "bench --sweep-max": Bound(1, MAX_CONCURRENCY, why="as bench.concurrency"),
    "bench --rate": Bound(0, 100_000, above=True),
    "bench --requests": Bound(1, 10**7),
    "bench --seed": Bound(0, 2**63 - 1),
    "bench --prefix-tokens": Bound(0, 2**20, why="a million tokens"),
    "bench --speed": Bound(0, 1000, above=True),
    "report --last": Bound(0, INT32_MAX),
    "report --threshold": Bound(0, 1000, why="as report.threshold"),
    "serve --slots": Bound(1, 1024, why="as gateway.slots"),
    "--workers": Bound(1, 64, why="as gateway.workers"),  # serve, start --gateway, service unit --gateway
    "--rpm": Bound(1, INT32_MAX),  # keys create
    "--tpm": Bound(1, 2**62),
    "--concurrency": Bound(1, 100_000),
    "--daily-tokens": Bound(1, 2**62),
    "--priority": Bound(1, 100),
    "watch --interval": _timeout(0.01, above=False),  # as watch.interval
    "watch --probe-timeout": _timeout(0.01, above=False),
    "watch --failures": Bound(1, 1000, why="as watch.failures"),
    "watch --max-restarts": Bound(1, 1000, why="as watch.max_restarts"),
}

# Durations written as text: the bound in seconds, and whether days ("7d") are allowed (Go durations have none,
# so a keep-alive sent to Ollama must not use them).
DURATION_FLAGS: dict[str, tuple[Bound, bool]] = {
    "--keep-alive": (Bound(-(2**62) / 1e9, (2**62) / 1e9, why="Ollama's duration range"), False),
    "bench --duration": (Bound(0, WEEK_S, above=True, why="a week"), False),
    "cleanup --older-than": (Bound(0, 100 * 365 * 86400.0, why="a century"), True),
    "report --since": (Bound(0, 100 * 365 * 86400.0, why="a century"), True),
}

# Warm-up / cool-down sizes written as a count, a time or a percentage (`core.bench.phases`): a bound for each.
@dataclass(frozen=True)
class PhaseBounds:
    count: Bound
    seconds: Bound
    percent: Bound


_PHASE = PhaseBounds(count=Bound(0, 10**6), seconds=Bound(0, WEEK_S, why="a week"), percent=Bound(0, 100))
PHASE_FLAGS: dict[str, PhaseBounds] = {"bench --warmup": _PHASE, "bench --cooldown": _PHASE}

KEEP_ALIVE = DURATION_FLAGS["--keep-alive"][0]  # also the config's server/generate.keep_alive


def bound_for(command: str, flag: str) -> Bound | None:
    """The range of numeric `flag` of `command` (e.g. "stop", "--timeout"), or None when the table lacks it."""
    return FLAG_BOUNDS.get(f"{command} {flag}") or FLAG_BOUNDS.get(flag)


def duration_for(command: str, flag: str) -> tuple[Bound, bool] | None:
    """The range (seconds) of duration `flag` of `command` and whether it takes days, or None."""
    return DURATION_FLAGS.get(f"{command} {flag}") or DURATION_FLAGS.get(flag)


def phase_for(command: str, flag: str) -> PhaseBounds | None:
    """The bounds of warm-up/cool-down flag `flag` of `command`, or None."""
    return PHASE_FLAGS.get(f"{command} {flag}")


def check_phase(text: str, bounds: PhaseBounds) -> str | None:
    """None when `text` is a count, time or percentage within `bounds`, else what is wrong with it."""
    from ollama_ops.core.bench.phases import parse_phase

    try:
        size = parse_phase(text)
    except ValueError as exc:
        return str(exc)
    if size.percent is not None:
        problem = bounds.percent.problem(size.percent)
        return None if problem is None else f"as a percentage {problem}"
    if size.seconds is not None:
        problem = bounds.seconds.problem(size.seconds)
        return None if problem is None else f"as a time (seconds) {problem}"
    return bounds.count.problem(size.count or 0)


def phase_size(command: str, flag: str, text: str | int) -> PhaseSize:
    """Warm-up/cool-down flag `flag` of `command` → a checked PhaseSize; UsageError naming the flag."""
    from ollama_ops.core.bench.phases import parse_phase

    bounds = phase_for(command, flag)
    if bounds is None:
        raise KeyError(f"{command} {flag} is not in PHASE_FLAGS")
    problem = check_phase(str(text), bounds)
    if problem:
        raise UsageError(f"{flag} {problem}")
    return parse_phase(text)


def check_flag_values(command: str, values: dict[str, float | None]) -> None:
    """The CLI's ranges for callers that build a command's settings without the CLI (a service, the library):
    UsageError naming the first flag out of range. None means "not given"."""
    for flag, value in values.items():
        bound = bound_for(command, flag)
        problem = bound.problem(value) if bound is not None and value is not None else None
        if problem:
            raise UsageError(f"{flag} {problem}")


def duration_seconds(command: str, flag: str, text: str) -> float:
    """The seconds of duration flag `flag` of `command`, within its range; UsageError naming the flag."""
    from ollama_ops.core.units import parse_duration, parse_window

    rule = duration_for(command, flag)
    if rule is None:
        raise KeyError(f"{command} {flag} is not in DURATION_FLAGS")
    problem = check_duration(text, *rule[:1], days=rule[1])
    if problem:
        raise UsageError(f"{flag} {problem}")
    return parse_window(text) if rule[1] else parse_duration(text)


def check_duration(text: str, bound: Bound, *, days: bool) -> str | None:
    """None when `text` is a duration within `bound`, else what is wrong with it."""
    from ollama_ops.core.units import parse_duration, parse_window

    try:
        seconds = parse_window(text) if days else parse_duration(text)
    except ValueError as exc:
        return str(exc)
    return bound.problem(seconds)

# api.Options / api.Runner in Ollama: the type of each option the server accepts.
OPTION_TYPES: dict[str, type] = {
    "num_keep": int, "seed": int, "num_predict": int, "top_k": int, "top_p": float, "min_p": float,
    "typical_p": float, "repeat_last_n": int, "temperature": float, "repeat_penalty": float,
    "presence_penalty": float, "frequency_penalty": float, "stop": list,
    "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int, "use_mmap": bool, "num_thread": int,
}


def parse_number(text: str) -> int | float | None:
    """'42' → 42, '0.2' → 0.2 (an int where the text is one), None when `text` is not a number."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None


def parse_option_value(raw: str) -> Any:
    """'0.2' → 0.2, '42' → 42, 'true' → True, '["a"]' → ['a']; anything else stays a string."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    number = parse_number(text)
    if number is not None:
        return number
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return raw


def coerce_option(key: str, value: Any) -> Any:
    """Check `value` against the option's type; raise UsageError naming the option otherwise."""
    if key not in OPTION_TYPES:
        import difflib

        close = difflib.get_close_matches(key, list(OPTION_TYPES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown option '{key}'{hint}")
    expected = OPTION_TYPES[key]
    if expected is list:
        return value if isinstance(value, list) else [str(value)]
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return _bounded(key, value)
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _bounded(key, float(value))
    raise UsageError(f"option '{key}' must be {expected.__name__}, got {value!r}")


def _bounded(key: str, value: Any) -> Any:
    bound = OPTION_BOUNDS.get(key)
    problem = bound.problem(value) if bound else None
    if problem:
        raise UsageError(f"option '{key}' {problem}")
    return value


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`["temperature=0.2", "stop=\\n"]` → typed options dict. Repeated `stop` accumulates."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"expected --option KEY=VALUE, got {pair!r}")
        value = coerce_option(key, raw if key == "stop" else parse_option_value(raw))
        if key == "stop" and "stop" in options:
            value = options["stop"] + value
        options[key] = value
    return options
