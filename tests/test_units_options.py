"""Sizes, durations and request options (pure cores): tables and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.options import (
    OPTION_BOUNDS,
    OPTION_TYPES,
    coerce_option,
    parse_number,
    parse_option_value,
    parse_options,
)
from ollama_ops.core.units import (
    format_bytes,
    format_seconds,
    parse_duration,
    parse_reserve,
    parse_size,
    parse_window,
)
from ollama_ops.errors import UsageError

# -- sizes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2GiB", 2 * 1024**3), ("2gib", 2 * 1024**3), ("2 GiB", 2 * 1024**3), (" 2Gi ", 2 * 1024**3),
    ("500MB", 500_000_000), ("500M", 500_000_000), ("1.5k", 1500), ("1.5KiB", 1536), ("1024", 1024),
    ("7b", 7), ("0", 0), ("1TB", 10**12), ("1TiB", 1024**4), (4096, 4096), (0, 0),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1", "2XB", "1.2.3G", "GiB", "1e3", True, False, -5,
                                  "9" * 400 + "GiB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("value, expected", [
    ("20%", ("percent", 20.0)), (" 0% ", ("percent", 0.0)), ("99.5%", ("percent", 99.5)),
    ("2GiB", ("bytes", 2.0 * 1024**3)), (1000, ("bytes", 1000.0)), ("0", ("bytes", 0.0)),
])
def test_parse_reserve(value, expected):
    assert parse_reserve(value) == expected


@pytest.mark.parametrize("value", ["100%", "-1%", "x%", "%", "nan%", "lots", -1, True])
def test_parse_reserve_rejects(value):
    with pytest.raises(ValueError):
        parse_reserve(value)


@given(st.integers(0, 10**15), st.sampled_from([("", 1), ("B", 1), ("k", 1000), ("KB", 1000), ("KiB", 1024),
                                                 ("MiB", 1024**2), ("GB", 1000**3), ("GiB", 1024**3)]))
def test_parse_size_scales_integers_exactly(n, unit):
    suffix, scale = unit
    if n * scale <= 2**63 - 1:
        assert parse_size(f"{n}{suffix}") == n * scale
    else:
        with pytest.raises(ValueError, match="too large"):
            parse_size(f"{n}{suffix}")


@given(st.one_of(st.text(max_size=30), st.integers(), st.booleans()))
def test_parse_size_and_reserve_raise_only_value_error(value):
    for parse in (parse_size, parse_reserve):
        try:
            parse(value)
        except ValueError:
            pass


# -- durations ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, seconds", [
    ("10m", 600.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1.5s", 1.5), ("2h", 7200.0), ("100us", 1e-4),
    ("100µs", 1e-4), ("5ns", 5e-9), ("-1", -1.0), ("10", 10.0), (" 3s ", 3.0), (5, 5.0), (0.5, 0.5),
    ("-1m", -60.0), ("0", 0.0),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "m", "1x", "1h 30m", "ten minutes", "1m2", True, "nan", "inf", "-inf",
                                   "1e400", float("nan"), float("inf")])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@given(st.integers(0, 100), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_parse_duration_sums_go_components(h, m, s, ms):
    text = f"{h}h{m}m{s}s{ms}ms"
    assert parse_duration(text) == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


@given(st.one_of(st.text(max_size=30), st.floats(), st.integers(-(10**6), 10**6)))
def test_parse_duration_is_finite_or_value_error(value):
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert math.isfinite(seconds)


# -- windows: `cleanup --older-than`, `report --since` -----------------------------------------------------------

WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize(("text", "seconds"), [
    ("30d", 30 * 86400), ("2w", 14 * 86400), ("12h", 43200), ("90m", 5400), ("45", 45), ("1.5d", 129600),
    (" 7D ", 7 * 86400), ("1h30m", 5400), ("0s", 0), ("-1d", -86400),
])
def test_parse_window(text, seconds):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "soon", "yesterday", "5x", "1d2h", "nand", "infd", "1e308w", "nan",
                                  "inf", "1e400", "30 days"])
def test_parse_window_rejects(text):
    with pytest.raises(ValueError, match=r"^is not a (finite )?duration"):
        parse_window(text)


@given(st.integers(0, 10**9), st.sampled_from(sorted(WINDOW_UNITS)))
def test_parse_window_scales_whole_numbers(n, unit):
    assert parse_window(f"{n}{unit}") == n * WINDOW_UNITS[unit]


@given(st.text(max_size=30))
def test_parse_window_is_finite_or_value_error(text):
    try:
        seconds = parse_window(text)
    except ValueError as exc:
        assert str(exc).startswith(("is not a duration like '30d', '2w' or '12h': ", "is not a finite duration: "))
        return
    assert math.isfinite(seconds)


@given(st.one_of(st.text(alphabet="0123456789.-hmsuµn", max_size=12), st.integers(-(10**6), 10**6).map(str)))
def test_parse_window_reads_every_go_duration_as_parse_duration_does(text):
    try:
        expected = parse_duration(text)
    except ValueError:
        return
    assert parse_window(text) == expected


# -- formatting ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, text", [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (98363007, "93.8 MiB"),
    (2 * 1024**3, "2.0 GiB"), (5 * 1024**4, "5.0 TiB"), (3 * 1024**5, "3072.0 TiB"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("s, text", [
    (None, "-"), (0.0, "0.00 ms"), (0.0042, "4.20 ms"), (0.85, "850 ms"), (2.414, "2.41 s"), (59.99, "59.99 s"),
    (192, "3m12s"), (3600, "1h00m"), (5400.5, "1h30m"),
])
def test_format_seconds(s, text):
    assert format_seconds(s) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e18))
def test_formatters_never_raise_on_finite_values(x):
    assert format_bytes(x)
    assert format_seconds(x)


@given(st.integers(0, 1024**4 * 100))
def test_format_bytes_parses_back_within_rounding(n):
    number, unit = format_bytes(n).split()
    parsed = parse_size(f"{number}{'' if unit == 'B' else unit}")
    assert abs(parsed - n) <= 0.05 * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(unit) + 1


# -- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    ("0.2", 0.2), ("42", 42), ("-1", -1), ("true", True), ("False", False), ('["a","b"]', ["a", "b"]),
    ('{"k": 1}', {"k": 1}), ("hello", "hello"), ("[not json", "[not json"), ("", ""), (" 7 ", 7),
])
def test_parse_option_value(raw, value):
    assert parse_option_value(raw) == value


@pytest.mark.parametrize("pairs, options", [
    (["temperature=0.2"], {"temperature": 0.2}),
    (["temperature=1"], {"temperature": 1.0}),
    (["num_predict=16", "seed=42"], {"num_predict": 16, "seed": 42}),
    (["use_mmap=false"], {"use_mmap": False}),
    (["stop=\\n"], {"stop": ["\\n"]}),
    (["stop= a ", "stop=b"], {"stop": [" a ", "b"]}),
    (['stop=["x","y"]'], {"stop": ['["x","y"]']}),  # stop is taken verbatim
    (["num_ctx=4096", "num_ctx=8192"], {"num_ctx": 8192}),
    ([], {}),
    (None, {}),
])
def test_parse_options(pairs, options):
    assert parse_options(pairs) == options


@pytest.mark.parametrize("pairs, message", [
    (["temprature=0.2"], "unknown option 'temprature'; did you mean 'temperature'?"),
    (["zzz=1"], "unknown option 'zzz'"),
    (["top_k=1.5"], "option 'top_k' must be int, got 1.5"),
    (["seed=true"], "option 'seed' must be int, got True"),
    (["temperature=hot"], "option 'temperature' must be float, got 'hot'"),
    (["temperature=nan"], "option 'temperature' must be a finite number"),
    (["use_mmap=1"], "option 'use_mmap' must be bool, got 1"),
    (["=1"], "expected --option KEY=VALUE"),
    (["temperature"], "expected --option KEY=VALUE"),
])
def test_parse_options_rejects_with_usage_error(pairs, message):
    with pytest.raises(UsageError) as info:
        parse_options(pairs)
    assert message in info.value.message
    assert info.value.exit_code == 2


INT_OPTIONS = sorted(k for k, t in OPTION_TYPES.items() if t is int)
FLOAT_OPTIONS = sorted(k for k, t in OPTION_TYPES.items() if t is float)


@given(st.sampled_from(INT_OPTIONS), st.integers(-(2**63), 2**63 - 1))
def test_int_options_round_trip_inside_their_bound(key, n):
    if OPTION_BOUNDS[key].problem(n) is None:
        assert parse_options([f"{key}={n}"]) == {key: n}
    else:
        with pytest.raises(UsageError, match=f"option '{key}' must be at"):
            parse_options([f"{key}={n}"])


@given(st.sampled_from(FLOAT_OPTIONS), st.floats(allow_nan=False, allow_infinity=False))
def test_float_options_round_trip_inside_their_bound(key, x):
    if OPTION_BOUNDS[key].problem(x) is None:
        assert parse_options([f"{key}={x!r}"]) == {key: x}
    else:
        with pytest.raises(UsageError, match=f"option '{key}' must be at"):
            parse_options([f"{key}={x!r}"])


def test_every_ollama_number_option_has_a_bound():
    assert set(INT_OPTIONS) | set(FLOAT_OPTIONS) == set(OPTION_BOUNDS)


@given(st.text(max_size=20).filter(lambda t: "\x00" not in t))
def test_stop_is_kept_verbatim(text):
    assert parse_options([f"stop={text}"]) == {"stop": [text]}


@given(st.lists(st.text(max_size=25), max_size=4))
def test_parse_options_raises_only_usage_error(pairs):
    try:
        options = parse_options(pairs)
    except UsageError:
        return
    for key, value in options.items():
        assert coerce_option(key, value) == value


@given(st.one_of(st.integers(), st.floats(allow_nan=False)))
def test_parse_number_reads_back_what_python_writes(x):
    # the one numeric reading of -o values and of --keep-alive: an int stays an int
    number = parse_number(repr(x))
    assert number == x and type(number) is type(x)


@pytest.mark.parametrize("text", ["", "10m", "1,5", "one", "0x10"])
def test_parse_number_is_none_for_other_text(text):
    assert parse_number(text) is None
