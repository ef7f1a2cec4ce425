"""Validation of a (partial) config mapping against the schema in `config_schema`.

Every problem raises `ConfigError` (exit 3) naming the origin (file with line/column, environment variable, or
command line), the unknown key with the nearest valid one, or the field path with the expected type and range.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import fields
from typing import Any

from ollama_ops.config_schema import HINTS, SECTIONS
from ollama_ops.config_yaml import Marks
from ollama_ops.errors import ConfigError, UsageError


def _type_name(tp: Any) -> str:
    if isinstance(tp, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is list:
        return "list of strings"
    if origin is dict:
        return "mapping of strings"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, str(tp))


def matches_type(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether `value` has type `tp`; returns the (possibly normalised) value."""
    if isinstance(tp, types.UnionType):
        for arg in typing.get_args(tp):
            ok, norm = matches_type(value, arg)
            if ok:
                return True, norm
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    origin = typing.get_origin(tp)
    if origin is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, list(value) if ok else value
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and not isinstance(v, (dict, list))
                                             for k, v in value.items())
        if ok:
            return True, {k: "" if v is None else str(v) for k, v in value.items()}
        return False, value
    return False, value


class _Problem(Exception):
    """One thing wrong with one config value; `validate_mapping` gathers them."""


def _check_value(path: str, value: Any, tp: Any, rules: dict[str, Any], origin: str) -> Any:
    ok, norm = matches_type(value, tp)
    if not ok:
        raise _Problem(f"{path} must be {_type_name(tp)}, got {value!r:.60}")
    if norm is None:
        return norm
    if rules.get("address"):
        _check_address(path, norm, origin)
    if "choices" in rules and norm not in rules["choices"]:
        raise _Problem(f"{path} must be one of {', '.join(rules['choices'])}, got {norm!r:.60}")
    if rules.get("nonempty") and isinstance(norm, str) and not norm.strip():
        raise _Problem(f"{path} must not be empty")
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        if norm != norm:  # NaN
            raise _Problem(f"{path} must be a number, got NaN")
        if not math.isfinite(norm):
            raise _Problem(f"{path} must be a finite number, got {norm}")
        if "min" in rules and norm < rules["min"]:
            raise _Problem(f"{path} must be >= {rules['min']}, got {norm}")
        if "max" in rules and norm > rules["max"]:
            raise _Problem(f"{path} must be <= {rules['max']:g}, got {norm:.6g}")
    if path == "memory.reserve":
        from ollama_ops.core.units import parse_reserve

        try:
            parse_reserve(norm)
        except ValueError as exc:
            raise _Problem(f"memory.reserve {exc}") from exc
    if rules.get("duration"):
        from ollama_ops.core.options import KEEP_ALIVE, check_duration

        problem = check_duration(str(norm), KEEP_ALIVE, days=False)
        if problem:
            raise _Problem(f"{path} {problem}")
    return norm


def _check_address(path: str, value: str, origin: str) -> None:
    """A server address must parse strictly (core.hosts.check_host): a typo must never fall back to the default
    daemon. From the command line or the environment that is a usage error (exit 2), in a file a config error."""
    from ollama_ops.core.hosts import HostError, check_host

    try:
        check_host(value)
    except HostError as exc:
        if origin == "command line":
            raise UsageError(f"invalid --host {value!r:.80}: {exc}") from None
        if origin.startswith("environment variable "):
            raise UsageError(f"invalid {origin.removeprefix('environment variable ')}={value!r:.80}: {exc}") \
                from None
        if not value.strip():
            raise _Problem(f"{path} must not be empty") from None
        raise _Problem(f"{path} {value!r:.80} is not a valid address: {exc}") from None


def _nearest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(options)}"


def validate_mapping(data: dict[str, Any], origin: str, marks: Marks | None = None,
                     problems: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Check a (partial) config mapping against the schema; returns it normalised. Every problem in it is
    reported at once (one ConfigError, problems joined by "; "), each at its line and column when `marks` has
    them."""
    marks = marks or {}
    problems = list(problems or [])

    def report(where: str, message: str) -> None:
        mark = marks.get(where)
        problems.append(f"{origin}:{mark[0]}:{mark[1]}: {message}" if mark else f"{origin}: {message}")

    def in_file_order(problem: str) -> tuple[int, int]:
        parts = problem.removeprefix(f"{origin}:").split(":", 2)
        return (int(parts[0]), int(parts[1])) if parts[0].isdigit() and parts[1].isdigit() else (0, 0)

    out: dict[str, dict[str, Any]] = {}
    for section, body in data.items():
        if not isinstance(section, str) or section not in SECTIONS:
            report(str(section), f"unknown section '{section}'{_nearest(str(section), list(SECTIONS))}")
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            report(f"{section}=", f"section '{section}' must be a mapping, got {type(body).__name__}")
            continue
        hints = HINTS[section]
        rules = {f.name: dict(f.metadata) for f in fields(SECTIONS[section])}
        out[section] = {}
        for key, value in body.items():
            if not isinstance(key, str) or key not in hints:
                report(f"{section}.{key}", f"unknown key '{section}.{key}'{_nearest(str(key), list(hints))}")
                continue
            try:
                out[section][key] = _check_value(f"{section}.{key}", value, hints[key], rules[key], origin)
            except _Problem as exc:
                report(f"{section}.{key}=", str(exc))
    if problems:
        raise ConfigError("; ".join(sorted(problems, key=in_file_order)))
    return out
