"""Every numeric option of every command is checked in one place (core/options.py FLAG_BOUNDS, applied by
cli/params.py): ranges, NaN, infinities and overflow are usage errors (exit 2) naming the flag, on one line.

The commands are walked from the CLI's own command table, so a numeric option added later is covered here
without editing this file (and fails the first test until the table gives it a range)."""

from __future__ import annotations

import json
from dataclasses import fields

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollama_ops.cli.app import COMMANDS, module_commands
from ollama_ops.cli.params import BoundedNumber, DurationText, numeric_params
from ollama_ops.config import BenchSettings
from ollama_ops.core.options import DURATION_FLAGS, FLAG_BOUNDS, OPTION_BOUNDS, Bound, bound_for, parse_options
from ollama_ops.errors import UsageError
from tests.conftest import free_port


def _all_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for module in dict.fromkeys(m for m, _ in COMMANDS.values()):
        found.update(module_commands(module))
    return found


def _walk(command: click.Command, path: str):  # type: ignore[no-untyped-def]
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


ALL = _all_commands()
NUMERIC = sorted({(path, next(o for o in [*p.opts] if o.startswith("--")))
                  for name, cmd in ALL.items() for path, p in numeric_params(cmd, name)})
DURATIONS = sorted((path, next(o for o in p.opts if o.startswith("--")))
                   for name, cmd in ALL.items() for path, sub in _walk(cmd, name) for p in sub.params
                   if isinstance(p.type, DurationText))


def _param(path: str, flag: str) -> click.Parameter:
    words = path.split()
    command = ALL[words[0]]
    for word in words[1:]:
        assert isinstance(command, click.Group)
        command = command.commands[word]
    return next(p for p in command.params if flag in p.opts)


def _argv(path: str, flag: str, value: str) -> list[str]:
    """The command line that gives `value` to `flag`, with dummy values for the other required parameters
    (declared first, so the bad value is the first problem Click meets)."""
    words = path.split()
    command = ALL[words[0]]
    for word in words[1:]:
        command = command.commands[word]  # type: ignore[attr-defined]
    argv = [*words]
    for p in command.params:
        if p.required and flag not in p.opts:
            argv += ["x"] if isinstance(p, click.Argument) else [p.opts[0], "x"]
    return [*argv, flag, value]


def test_the_walk_finds_the_numeric_options_of_every_command():
    paths = {path for path, _ in NUMERIC}
    assert {"generate", "chat", "bench", "status", "stop", "logs", "memory", "report"} <= paths
    assert ("generate", "--max-tokens") in NUMERIC and ("bench", "--concurrency") in NUMERIC
    assert {("generate", "--keep-alive"), ("bench", "--duration"), ("cleanup", "--older-than"),
            ("report", "--since")} <= set(DURATIONS)


@pytest.mark.parametrize("path, flag", NUMERIC)
def test_every_numeric_option_has_a_bound_and_the_checked_type(path, flag):
    assert bound_for(path.split()[0], flag) is not None, f"add {path} {flag} to FLAG_BOUNDS in core/options.py"
    assert isinstance(_param(path, flag).type, BoundedNumber)


def test_no_command_declares_a_range_of_its_own():
    # typer's min=/max= would be a second range table, silently replaced by FLAG_BOUNDS when the command is
    # built (and so a lie to whoever reads the command): the declared types must be plain INT/FLOAT
    import importlib

    import typer
    from typer.main import get_group

    declared = []
    for module in dict.fromkeys(m for m, _ in COMMANDS.values()):
        staging = typer.Typer()
        importlib.import_module(f"ollama_ops.cli.{module}").register(staging)
        for name, command in get_group(staging).commands.items():
            declared += [f"{path} {p.opts}" for path, p in numeric_params(command, name)
                         if isinstance(p.type, (click.IntRange, click.FloatRange))]
    assert declared == [], "move these ranges to FLAG_BOUNDS in core/options.py"


def _bad_values(bound: Bound, integer: bool) -> list[str]:
    values = ["99999999999999999999999999999" if integer else "1e309", f"{int(bound.high) + 1}"]
    values.append(f"{int(bound.low) - 1}" if integer else (f"{bound.low!r}" if bound.above else f"{bound.low - 1}"))
    if not integer:
        values += ["nan", "inf", "-inf", "NaN", f"{bound.high * 2 + 1!r}"]
    else:
        values += ["1.5", "abc", "-99999999999999999999999999"]
    return values


CASES = [(path, flag, value) for path, flag in NUMERIC
         for value in _bad_values(bound_for(path.split()[0], flag),  # type: ignore[arg-type]
                                  isinstance(_param(path, flag).type.base, click.types.IntParamType))]  # type: ignore[union-attr]


@pytest.mark.parametrize("path, flag, value", CASES)
def test_out_of_range_nan_inf_and_overflow_are_one_line_usage_errors(sollama, path, flag, value):
    result = sollama(*_argv(path, flag, value))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: Invalid value for ")
    assert f"'{flag}'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("path, flag", NUMERIC)
def test_the_ends_of_each_range_are_accepted(path, flag):
    bound = bound_for(path.split()[0], flag)
    param = _param(path, flag)
    assert bound is not None and isinstance(param.type, BoundedNumber)
    integer = isinstance(param.type.base, click.types.IntParamType)
    low = bound.low + (1 if integer else 1e-6) if bound.above else bound.low
    for value in (low, bound.high):
        text = str(int(value)) if integer else repr(float(value))
        assert param.type.convert(text, param, None) == (int(text) if integer else float(text))


@pytest.mark.parametrize("path, flag, value", [
    ("generate", "--keep-alive", "1e400"), ("generate", "--keep-alive", "nan"), ("generate", "--keep-alive", "5d"),
    ("chat", "--keep-alive", "forever"), ("bench", "--duration", "0"), ("bench", "--duration", "-3s"),
    ("bench", "--duration", "8000000000h"), ("cleanup", "--older-than", "nand"),
    ("cleanup", "--older-than", "-1d"), ("report", "--since", "infd"), ("report", "--since", "1e300w"),
])
def test_bad_durations_are_one_line_usage_errors(sollama, path, flag, value):
    result = sollama(*_argv(path, flag, value))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"'{flag}'" in result.stderr


@pytest.mark.parametrize("value", ["soon", "5x", "nand", "-1d", "1e300w", "1e308w"])
def test_older_than_and_since_word_a_bad_window_alike(sollama, value):
    # one parser (core.units.parse_window) and one range table for both window flags
    older = sollama("cleanup", "--dry-run", "--no-orphans", "--older-than", value)
    since = sollama("report", "--usage", "--since", value)
    assert older.exit_code == since.exit_code == 2, older.output + since.output
    assert older.stderr.count("\n") == 1 and "--older-than" in older.stderr
    assert older.stderr.replace("--older-than", "--since").replace("cleanup -h", "report -h") == since.stderr


def test_the_services_read_a_window_as_the_flags_do():
    from ollama_ops.services.report import since_epoch

    assert since_epoch("2w", now=2e6) == 2e6 - 14 * 86400 and since_epoch("1.5d", now=2e6) == 2e6 - 129600
    assert since_epoch(None) is None
    with pytest.raises(UsageError, match=r"^--since is not a duration like '30d', '2w' or '12h': 'soon'$"):
        since_epoch("soon")
    with pytest.raises(UsageError, match=r"^--since must be at least 0, got -86400$"):
        since_epoch("-1d")


def test_report_since_takes_weeks(sollama):
    result = sollama("report", "--usage", "--since", "2w", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requests"] == 0


@pytest.mark.parametrize("path, flag", DURATIONS)
def test_every_duration_flag_is_in_the_table(path, flag):
    assert f"{path} {flag}" in DURATION_FLAGS or flag in DURATION_FLAGS


def test_bench_concurrency_is_capped_as_the_config_caps_it():
    cap = next(f.metadata["max"] for f in fields(BenchSettings) if f.name == "concurrency")
    for flag in ("--concurrency", "--max-concurrency", "--sweep-max"):
        assert FLAG_BOUNDS[f"bench {flag}"].high == cap


def test_generate_max_tokens_zero_sends_nothing(sollama, stub):
    for argv in (["--max-tokens", "0"], ["--max-tokens", "-1"], ["-o", "num_predict=0"], ["-o", "num_predict=-2"]):
        result = sollama("--host", stub.host, "generate", "-m", "stub-model", *argv, "hi")
        assert result.exit_code == 2, result.output
        assert ("--max-tokens" in result.stderr) or ("num_predict" in result.stderr)
    assert [r for r in stub.requests if r[1] in ("/api/generate", "/api/chat")] == []


@pytest.mark.parametrize("pair, message", [
    ("top_p=1.5", "option 'top_p' must be at most 1, got 1.5"),
    ("temperature=-0.1", "option 'temperature' must be at least 0, got -0.1"),
    ("num_ctx=99999999999", "option 'num_ctx' must be at most"),
    ("seed=-5", "option 'seed' must be at least -1, got -5"),
    ("num_predict=0", "option 'num_predict' must be at least 1, got 0"),
    ("top_k=-1", "option 'top_k' must be at least 0"),
    ("min_p=inf", "option 'min_p' must be a finite number"),
])
def test_ollama_options_share_the_table(pair, message):
    with pytest.raises(UsageError) as info:
        parse_options([pair])
    assert message in info.value.message


def test_shortcut_flags_share_the_option_bounds():
    assert FLAG_BOUNDS["--max-tokens"] is OPTION_BOUNDS["num_predict"]
    assert FLAG_BOUNDS["--temperature"] is OPTION_BOUNDS["temperature"]
    assert FLAG_BOUNDS["--num-ctx"] is OPTION_BOUNDS["num_ctx"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_random_temperatures_are_either_sent_or_refused(sollama, value):
    port = free_port()  # nothing listens: an accepted value gets as far as connecting (exit 4)
    result = sollama("--host", f"127.0.0.1:{port}", "generate", "-m", "m", "--temperature", repr(value), "hi")
    allowed = OPTION_BOUNDS["temperature"].problem(value) is None
    assert result.exit_code == (4 if allowed else 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6), st.floats(0, 1e6), st.booleans())
def test_bound_problem_is_none_exactly_inside_the_range(value, low, span, above):
    bound = Bound(low, low + span, above=above)
    inside = value == value and abs(value) != float("inf") and (value > low if above else value >= low) \
        and value <= low + span
    assert (bound.problem(value) is None) == inside


@pytest.mark.parametrize("kw, message", [
    ({"concurrency": 5000}, "--concurrency must be at most 4096 (as bench.concurrency), got 5000"),
    ({"rate": float("nan")}, "--rate must be a finite number, got nan"),
    ({"rate": 0.0}, "--rate must be greater than 0, got 0"),
    ({"duration": "0s"}, "--duration must be greater than 0, got 0"),
    ({"duration": "1e999s"}, "--duration is not a duration"),
    ({"timeout": float("inf")}, "--timeout must be a finite number, got inf"),
    ({"max_tokens": 0}, "--max-tokens must be at least 1, got 0"),
    ({"warmup": -1}, "--warmup must be at least 0, got -1"),
])
def test_the_bench_service_checks_the_same_table_without_the_cli(kw, message):
    from ollama_ops.config import load_settings
    from ollama_ops.services.bench.config import build_config

    with pytest.raises(UsageError) as info:
        build_config(load_settings(environ={}), model="m", **kw)
    assert info.value.message.startswith(message), info.value.message


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), st.one_of(st.floats(), st.integers(-(2**70), 2**70)))
def test_any_number_is_accepted_exactly_when_it_is_inside_the_bound(case, number):
    path, flag = case
    param = _param(path, flag)
    assert isinstance(param.type, BoundedNumber)
    bound = bound_for(path.split()[0], flag)
    assert bound is not None
    integer = isinstance(param.type.base, click.types.IntParamType)
    text = repr(number)
    try:
        value = param.type.convert(text, param, None)
    except click.BadParameter:  # refused: not an integer where one is needed, or outside the bound
        assert (integer and not isinstance(number, int)) or bound.problem(number) is not None
        return
    assert bound.problem(value) is None
    assert value == (int(text) if integer else float(text))
