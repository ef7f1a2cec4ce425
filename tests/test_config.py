"""Configuration: precedence, `sollama config ...`, one-line errors with exit 3, and a fuzzed loader."""

from __future__ import annotations

import json
import math
import typing
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollama_ops import config, config_check
from ollama_ops.errors import ConfigError, UsageError


def _entries(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return {e["key"]: e for e in json.loads(result.stdout)["entries"]}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- precedence ------------------------------------------------------------------------------------------------

def test_defaults_come_from_the_shipped_yaml(sollama):
    entries = _entries(sollama("config", "show", "--json"))
    shipped = yaml.safe_load(config.default_yaml_path().read_text())
    for section, body in shipped.items():
        for key, value in body.items():
            entry = entries[f"{section}.{key}"]
            assert entry["source"] == "default"
            assert entry["value"] == value, entry
    assert len(entries) == sum(len(body) for body in shipped.values())


def test_precedence_flag_over_env_over_file_over_default(sollama, tmp_path, monkeypatch):
    cfg = _write(tmp_path / "c.yaml", "server:\n  host: 10.0.0.1:1\nclient:\n  retries: 5\n  read_timeout: 7\n"
                                      "bench:\n  concurrency: 8\n")
    monkeypatch.setenv("SOLLAMA_SERVER_HOST", "10.0.0.2:2")
    monkeypatch.setenv("SOLLAMA_CLIENT_RETRIES", "6")
    entries = _entries(sollama("--config", str(cfg), "--host", "10.0.0.3:3", "config", "show", "--json"))
    assert entries["server.host"] == {"key": "server.host", "value": "10.0.0.3:3", "source": "flag"}
    assert entries["client.retries"] == {"key": "client.retries", "value": 6, "source": "env:SOLLAMA_CLIENT_RETRIES"}
    assert entries["client.read_timeout"] == {"key": "client.read_timeout", "value": 7.0, "source": f"file:{cfg}"}
    assert entries["bench.concurrency"]["source"] == f"file:{cfg}"
    assert entries["client.connect_timeout"] == {"key": "client.connect_timeout", "value": 3.0, "source": "default"}


def test_without_the_flag_env_wins_over_file(sollama, tmp_path, monkeypatch):
    cfg = _write(tmp_path / "c.yaml", "server:\n  host: 10.0.0.1:1\n")
    monkeypatch.setenv("SOLLAMA_SERVER_HOST", "10.0.0.2:2")
    entries = _entries(sollama("--config", str(cfg), "config", "show", "--json"))
    assert entries["server.host"]["value"] == "10.0.0.2:2"
    assert entries["server.host"]["source"] == "env:SOLLAMA_SERVER_HOST"


def test_ollama_host_is_honoured_below_sollama_server_host(sollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:9999")
    assert _entries(sollama("config", "show", "--json"))["server.host"]["source"] == "env:OLLAMA_HOST"
    monkeypatch.setenv("SOLLAMA_SERVER_HOST", "127.0.0.1:1")
    entry = _entries(sollama("config", "show", "--json"))["server.host"]
    assert (entry["value"], entry["source"]) == ("127.0.0.1:1", "env:SOLLAMA_SERVER_HOST")


def test_config_file_from_sollama_config_then_user_dir(sollama, tmp_path, monkeypatch, isolated):
    _write(isolated / "config.yaml", "bench:\n  requests: 11\n")
    entries = _entries(sollama("config", "show", "--json"))
    assert entries["bench.requests"] == {"key": "bench.requests", "value": 11,
                                         "source": f"file:{isolated / 'config.yaml'}"}
    other = _write(tmp_path / "other.yaml", "bench:\n  requests: 12\n")
    monkeypatch.setenv("SOLLAMA_CONFIG", str(other))
    assert _entries(sollama("config", "show", "--json"))["bench.requests"]["value"] == 12


@pytest.mark.parametrize("var, raw, key, value", [
    ("SOLLAMA_CLIENT_CONNECT_TIMEOUT", "0.5", "client.connect_timeout", 0.5),
    ("SOLLAMA_CLIENT_READ_TIMEOUT", "10", "client.read_timeout", 10.0),
    ("SOLLAMA_MEMORY_ENFORCE", "true", "memory.enforce", True),
    ("SOLLAMA_MEMORY_RESERVE", "2GiB", "memory.reserve", "2GiB"),
    ("SOLLAMA_SERVER_KEEP_ALIVE", "-1", "server.keep_alive", -1),
    ("SOLLAMA_SERVER_KEEP_ALIVE", "10m", "server.keep_alive", "10m"),
    ("SOLLAMA_SERVER_MODELS_DIR", "2001-01-01", "server.models_dir", "2001-01-01"),
    ("SOLLAMA_SERVER_NUM_PARALLEL", "null", "server.num_parallel", None),
    ("SOLLAMA_SERVER_EXTRA_ENV", "{OLLAMA_DEBUG: 1}", "server.extra_env", {"OLLAMA_DEBUG": "1"}),
    ("SOLLAMA_REPORT_GATED_METRICS", "ttft_p50, e2el_p99", "report.gated_metrics", ["ttft_p50", "e2el_p99"]),
    ("SOLLAMA_OLLAMA_BIN", "/opt/ollama", "ollama.binary", "/opt/ollama"),
])
def test_env_values_are_typed_by_the_schema(sollama, monkeypatch, var, raw, key, value):
    monkeypatch.setenv(var, raw)
    entry = _entries(sollama("config", "show", "--json"))[key]
    assert (entry["value"], entry["source"]) == (value, f"env:{var}")


def test_config_show_table_names_the_file(sollama, tmp_path):
    cfg = _write(tmp_path / "c.yaml", "logging:\n  level: debug\n")
    result = sollama("--config", str(cfg), "config", "show", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"config file: {cfg}" in result.stdout
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in result.stdout.splitlines()]
    assert ["logging.level", "debug", f"file:{cfg}"] in rows
    assert ["logging.max_log_bytes", "10485760", "default"] in rows


# -- errors: exit 3, one line ------------------------------------------------------------------------------------

def _config_error(sollama, cfg: Path, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = sollama("--config", str(cfg), *(args or ("config", "show")))
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("text, where, then", [
    # PyYAML's context first (where the construct starts), then where the parser noticed the problem
    ("server:\n  host: [1\n", "2:9: while parsing a flow sequence: expected ',' or ']'", "3:1"),
    ("server:\n  host: 'a\n", "2:9: while scanning a quoted scalar: found unexpected end of stream", "3:1"),
    ("client:\n  retries: 1\n   bad: x\n", "3:7: mapping values are not allowed here", None),
    ("server:\n\thost: x\n", "2:1: found character '\\t' that cannot start any token", None),
    ("a: b: c\n", "1:5: mapping values are not allowed here", None),
    ("a: b\nc: \x1f\n", "2:4: character U+001F is not allowed in YAML", None),
])
def test_invalid_yaml_names_file_line_and_column(sollama, tmp_path, text, where, then):
    cfg = _write(tmp_path / "bad.yaml", text)
    message = _config_error(sollama, cfg)
    assert message.startswith(f"error: invalid YAML at {cfg}:{where}"), message
    if then:
        assert message.endswith(f" at {cfg}:{then}"), message


def test_an_unclosed_quote_is_reported_where_it_starts(sollama, tmp_path):
    cfg = _write(tmp_path / "q.yaml", 'server:\n  host: "127.0.0.1\nclient:\n  retries: 2\n')
    message = _config_error(sollama, cfg)
    assert message.startswith(f"error: invalid YAML at {cfg}:2:9: while scanning a quoted scalar"), message
    assert message.endswith(f"found unexpected end of stream at {cfg}:5:1"), message


@pytest.mark.parametrize("text, message", [
    ("server:\n  hots: x\n", "2:3: unknown key 'server.hots'; did you mean 'host'?"),
    ("client:\n  retry: 1\n", "2:3: unknown key 'client.retry'; did you mean 'retries'?"),
    ("sever:\n  host: x\n", "1:1: unknown section 'sever'; did you mean 'server'?"),
    ("zzz: {}\n", "1:1: unknown section 'zzz'; valid keys: server, ollama, memory, client, generate, bench, report, "
                  "logging, watch, gateway"),
])
def test_unknown_key_names_it_and_the_nearest(sollama, tmp_path, text, message):
    cfg = _write(tmp_path / "c.yaml", text)
    assert _config_error(sollama, cfg) == f"error: {cfg}:{message}"


@pytest.mark.parametrize("text, message", [
    ("client:\n  retries: 99\n", "2:12: client.retries must be <= 10, got 99"),
    ("client:\n  retries: two\n", "2:12: client.retries must be integer, got 'two'"),
    ("client:\n  retries: 1.5\n", "2:12: client.retries must be integer, got 1.5"),
    ("client:\n  read_timeout: 0\n", "2:17: client.read_timeout must be >= 0.01, got 0.0"),
    ("client:\n  read_timeout: 1e6\n", "2:17: client.read_timeout must be number, got '1e6'"),
    ("client:\n  read_timeout: 1.0e+6\n", "2:17: client.read_timeout must be <= 604800, got 1e+06"),
    ("client:\n  read_timeout: .nan\n", "2:17: client.read_timeout must be a number, got NaN"),
    ("client:\n  read_timeout: .inf\n", "2:17: client.read_timeout must be a finite number, got inf"),
    ("memory:\n  enforce: 'yes'\n", "2:12: memory.enforce must be true/false, got 'yes'"),
    ("memory:\n  reserve: lots\n", "2:12: memory.reserve must be a percent like '20%' or a size like '2GiB'"),
    ("memory:\n  reserve: 150%\n", "2:12: memory.reserve percent must be in [0, 100)"),
    ("memory:\n  reserve: " + "9" * 400 + "GiB\n", "2:12: memory.reserve must be a percent like '20%'"),
    ("server:\n  kv_cache_type: q2\n", "2:18: server.kv_cache_type must be one of f16, q8_0, q4_0, got 'q2'"),
    ("server:\n  host: ''\n", "2:9: server.host must not be empty"),
    ("server:\n  extra_env: [A]\n", "2:14: server.extra_env must be mapping of strings"),
    ("server:\n  extra_env: {A: {B: c}}\n", "2:14: server.extra_env must be mapping of strings"),
    ("report:\n  gated_metrics: ttft_p50\n", "2:18: report.gated_metrics must be list of strings"),
    ("generate:\n  keep_alive: 5d\n", "2:15: generate.keep_alive is not a duration like '10m'"),
    ("generate:\n  keep_alive: .inf\n", "2:15: generate.keep_alive must be string or integer or null, got inf"),
    ("server: 5\n", "1:9: section 'server' must be a mapping, got int"),
    ("- a\n- b\n", "1:1: the top level must be a mapping of sections, got list"),
])
def test_wrong_type_or_range_names_the_field_line_and_column(sollama, tmp_path, text, message):
    cfg = _write(tmp_path / "c.yaml", text)
    assert _config_error(sollama, cfg).startswith(f"error: {cfg}:{message}")


def test_every_problem_in_the_file_is_reported_at_once_in_file_order(sollama, tmp_path):
    cfg = _write(tmp_path / "c.yaml", "client:\n  retries: x\n  read_timeout: .nan\nserver:\n  hots: a\n"
                                      "bench: {}\nbench:\n  concurrency: 0\nzz: 1\n")
    message = _config_error(sollama, cfg)
    assert message.removeprefix("error: ").split("; ") == [
        f"{cfg}:2:12: client.retries must be integer, got 'x'",
        f"{cfg}:3:17: client.read_timeout must be a number, got NaN",
        f"{cfg}:5:3: unknown key 'server.hots'",
        "did you mean 'host'?",
        f"{cfg}:7:1: bench is given twice (first at line 6)",
        f"{cfg}:8:16: bench.concurrency must be >= 1, got 0",
        f"{cfg}:9:1: unknown section 'zz'",
        "valid keys: server, ollama, memory, client, generate, bench, report, logging, watch, gateway",
    ]


def test_bad_env_value_is_exit_3_naming_the_field(sollama, monkeypatch):
    monkeypatch.setenv("SOLLAMA_BENCH_CONCURRENCY", "0")
    result = sollama("config", "show")
    assert result.exit_code == 3, result.output
    assert result.stderr.strip() == ("error: environment variable SOLLAMA_BENCH_CONCURRENCY: "
                                     "bench.concurrency must be >= 1, got 0")


def test_env_value_that_yaml_cannot_construct_is_a_config_error(sollama, monkeypatch):
    monkeypatch.setenv("SOLLAMA_CLIENT_RETRIES", "2001-13-45")  # a YAML timestamp with month 13
    result = sollama("config", "show")
    assert result.exit_code == 3, result.output
    assert "client.retries must be integer, got '2001-13-45'" in result.stderr


def test_missing_explicit_config_is_exit_3(sollama, tmp_path):
    result = sollama("--config", str(tmp_path / "absent.yaml"), "config", "show")
    assert result.exit_code == 3, result.output
    assert "config file not found" in result.stderr and "sollama config init" in result.stderr


def test_config_that_is_a_directory_or_binary_is_exit_3(sollama, tmp_path):
    assert "cannot read config file" in _config_error(sollama, tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert "is not UTF-8 text (byte 0xff at line 1, column 1)" in _config_error(sollama, binary)


def test_bad_config_fails_other_commands_too(sollama, tmp_path):
    cfg = _write(tmp_path / "c.yaml", "client:\n  retries: -1\n")
    result = sollama("--config", str(cfg), "models", "list")
    assert result.exit_code == 3, result.output
    assert "client.retries must be >= 0" in result.stderr


# -- config init / validate / path ---------------------------------------------------------------------------------

def test_init_writes_the_example_and_refuses_to_overwrite(sollama, isolated):
    target = isolated / "config.yaml"
    result = sollama("config", "init")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    assert target.read_text() == (config.default_yaml_path().parent / "sollama.example.yaml").read_text()
    assert config.load_file(target)  # the example itself is valid

    target.write_text("bench:\n  requests: 3\n")
    again = sollama("config", "init")
    assert again.exit_code == 1, again.output
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert target.read_text() == "bench:\n  requests: 3\n"

    forced = sollama("config", "init", "--force")
    assert forced.exit_code == 0, forced.output
    assert "bench:\n  requests: 3\n" != target.read_text()


def test_init_to_an_explicit_path(sollama, tmp_path):
    target = tmp_path / "sub" / "mine.yaml"
    result = sollama("config", "init", str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file()


def test_validate_file(sollama, tmp_path):
    good = _write(tmp_path / "good.yaml", "bench:\n  concurrency: 4\n")
    result = sollama("config", "validate", str(good), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"file": str(good), "valid": True}
    assert sollama("config", "validate", str(good)).stdout.strip() == f"ok: {good} is valid"

    bad = _write(tmp_path / "bad.yaml", "bench:\n  concurency: 4\n")
    result = sollama("config", "validate", str(bad))
    assert result.exit_code == 3, result.output
    assert "did you mean 'concurrency'?" in result.stderr

    result = sollama("config", "validate", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 3, result.output
    assert "config file not found" in result.stderr


def test_validate_does_not_need_the_active_config_to_be_valid(sollama, tmp_path):
    broken = _write(tmp_path / "broken.yaml", "server: [\n")
    good = _write(tmp_path / "good.yaml", "{}\n")
    result = sollama("--config", str(broken), "config", "validate", str(good))
    assert result.exit_code == 0, result.output


def test_path_reports_config_state_and_data_dirs(sollama, isolated, tmp_path):
    result = sollama("config", "path", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config_file"] == str(isolated / "config.yaml")
    assert data["config_exists"] is False
    assert data["state_dir"] == str(isolated / "state")
    assert data["data_dir"] == str(isolated / "data")
    cfg = _write(tmp_path / "x.yaml", "{}\n")
    data = json.loads(sollama("--config", str(cfg), "config", "path", "--json").stdout)
    assert (data["config_file"], data["config_exists"]) == (str(cfg), True)


# -- fuzzing: only ConfigError may escape ------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                         st.text(max_size=20))
yaml_values = st.recursive(yaml_scalars, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
known_keys = [(s, k) for s, hints in config.HINTS.items() for k in hints]
section_names = st.one_of(st.sampled_from(list(config.SECTIONS)), st.text(max_size=10), st.integers())
key_names = st.one_of(st.sampled_from([k for _, k in known_keys]), st.text(max_size=10), st.integers())
config_docs = st.dictionaries(section_names, st.one_of(st.dictionaries(key_names, yaml_values, max_size=5),
                                                       yaml_scalars), max_size=4)
yaml_ish_text = st.text(alphabet=st.sampled_from(list(" \n\t:-[]{}'\"#&*!|>?,%@`.0123456789abcehnrstv\\")),
                        max_size=80)


def _types_hold(settings_obj: config.Settings) -> None:
    """Whatever validates must build settings whose values have the declared types."""
    for section, hints in config.HINTS.items():
        for key, tp in hints.items():
            ok, _ = config_check.matches_type(getattr(getattr(settings_obj, section), key), tp)
            assert ok, (section, key)


@FUZZ
@given(st.one_of(st.text(max_size=200), yaml_ish_text))
def test_fuzz_parse_and_validate_raise_only_config_error(text):
    try:
        config.validate_mapping(config.parse_yaml(text, "fuzz.yaml"), "fuzz.yaml")
    except ConfigError as exc:
        assert "\n" not in exc.one_line()


@FUZZ
@given(config_docs)
def test_fuzz_structured_documents(doc):
    try:
        out = config.validate_mapping(doc, "doc")
    except ConfigError:
        return
    for section, body in out.items():
        for key, value in body.items():
            ok, _ = config_check.matches_type(value, config.HINTS[section][key])
            assert ok
            assert not (isinstance(value, float) and not math.isfinite(value))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=st.one_of(st.text(max_size=200), yaml_ish_text, config_docs.map(lambda d: yaml.safe_dump(d))))
def test_fuzz_load_settings_from_a_file(fuzz_dir, text):
    path = fuzz_dir / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        loaded = config.load_settings(path, environ={})
    except ConfigError:
        return
    _types_hold(loaded)


@FUZZ
@given(st.dictionaries(st.sampled_from([f"SOLLAMA_{s.upper()}_{k.upper()}" for s, k in known_keys]
                                       + ["OLLAMA_HOST", "SOLLAMA_OLLAMA_BIN"]),
                       st.text(max_size=30), max_size=4))
def test_fuzz_environment(environ):
    try:
        loaded = config.load_settings(config.default_yaml_path(), environ=environ)
    except (ConfigError, UsageError):  # UsageError: a bad address (core.hosts.check_host)
        return
    _types_hold(loaded)


@FUZZ
@given(st.sampled_from([f"{s}.{k}" for s, k in known_keys]), yaml_values)
def test_fuzz_flags(dotted, value):
    try:
        loaded = config.load_settings(config.default_yaml_path(), environ={}, flags={dotted: value})
    except (ConfigError, UsageError):
        return
    _types_hold(loaded)
    if value is not None:  # None means "flag not given"
        assert loaded.sources[dotted] == "flag"


def test_every_field_has_a_default_and_a_rule_entry():
    shipped = yaml.safe_load(config.default_yaml_path().read_text())
    for section, cls in config.SECTIONS.items():
        assert {f.name for f in fields(cls)} == set(shipped[section]), section
        for f in fields(cls):
            assert typing.get_type_hints(cls)[f.name] is not None
