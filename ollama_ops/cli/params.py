"""Every numeric (and duration) option of every command checked against the one table in core/options.py.

`bound_command` runs on each Click command as it is built (see `module_commands` in cli/app.py): it swaps the
type of each INT/FLOAT parameter for one that also checks the flag's range, NaN and infinity, and gives the
duration flags a type that checks the text without changing it. A bad value is a Click usage error naming the
flag (exit 2); a numeric flag the table does not know is a programming error caught by the tests.
"""

from __future__ import annotations

from typing import Any

import click

from ollama_ops.core.options import Bound, PhaseBounds, bound_for, check_duration, check_phase, duration_for, phase_for

NUMBER_TYPES = (click.types.IntParamType, click.types.FloatParamType)


class BoundedNumber(click.ParamType):
    """An int or float (as the parameter was declared) within a Bound."""

    def __init__(self, integer: bool, bound: Bound) -> None:
        self.base: click.ParamType = click.INT if integer else click.FLOAT
        self.name = self.base.name
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = self.base.convert(value, param, ctx)
        problem = self.bound.problem(number)
        if problem:
            self.fail(problem, param, ctx)
        return number


class DurationText(click.ParamType):
    """A duration given as text ('10m', '300', '7d'), checked and passed on unchanged."""

    name = "text"

    def __init__(self, bound: Bound, days: bool) -> None:
        self.bound = bound
        self.days = days

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        problem = check_duration(str(value), self.bound, days=self.days)
        if problem:
            self.fail(problem, param, ctx)
        return value


class PhaseText(click.ParamType):
    """A warm-up/cool-down size given as text ('10', '5s', '10%'), checked and passed on unchanged."""

    name = "text"

    def __init__(self, bounds: PhaseBounds) -> None:
        self.bounds = bounds

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        problem = check_phase(str(value), self.bounds)
        if problem:
            self.fail(problem, param, ctx)
        return value


def _flag(param: click.Parameter) -> str:
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return longs[0] if longs else (param.opts[0] if param.opts else str(param.name))


def numeric_params(command: click.Command, path: str) -> list[tuple[str, click.Parameter]]:
    """(command path, parameter) for every INT/FLOAT parameter of `command` and its subcommands."""
    found = [(path, p) for p in command.params
             if isinstance(p.type, (*NUMBER_TYPES, BoundedNumber))]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += numeric_params(sub, f"{path} {name}")
    return found


def bound_command(command: click.Command, path: str) -> None:
    """Give each numeric and duration parameter of `command` (and its subcommands) its checked type."""
    for param in command.params:
        flag = _flag(param)
        if isinstance(param.type, NUMBER_TYPES):
            bound = bound_for(path, flag)
            if bound is not None:
                param.type = BoundedNumber(isinstance(param.type, click.types.IntParamType), bound)
        elif isinstance(param.type, click.types.StringParamType):
            duration = duration_for(path, flag)
            phase = phase_for(path, flag)
            if duration is not None:
                param.type = DurationText(*duration)
            elif phase is not None:
                param.type = PhaseText(phase)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            bound_command(sub, f"{path} {name}")
