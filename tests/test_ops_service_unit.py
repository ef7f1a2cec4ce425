"""`sollama service unit` quotes and escapes for systemd: what systemd reads back is exactly the value (checked
with a faithful reading of systemd's rules, and by `systemd-analyze verify` where it exists); a control character
is a usage error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ollama_ops.errors import ExitCode

C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
             "'": "'", "s": " "}


def _specifiers(text: str) -> str:
    """systemd's specifier pass: `%%` is `%`; any other `%x` would be replaced (the test fails on it)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            assert text[i + 1:i + 2] == "%", f"unescaped specifier in {text!r}"
            out.append("%")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def systemd_words(text: str) -> list[str]:
    """systemd's extract_first_word with EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE, word by word."""
    words, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return words
        word, quote, started = [], None, False
        while i < n:
            c = text[i]
            if quote is None and c in " \t":
                break
            if c == "\\":
                nxt = text[i + 1]
                assert nxt in C_ESCAPES, f"unknown escape \\{nxt} in {text!r}"
                word.append(C_ESCAPES[nxt])
                i += 2
                continue
            if quote is None and c in "\"'":
                quote, started = c, True
            elif c == quote:
                quote = None
            else:
                word.append(c)
            i += 1
        assert quote is None, f"unterminated quote in {text!r}"
        words.append("".join(word) if word or started else "")


def _exec_words(line: str) -> list[str]:
    words = systemd_words(_specifiers(line))
    for w in words:  # `$$` is `$`; a lone `$` would start a variable
        assert "$" not in w.replace("$$", ""), f"unescaped $ in {w!r}"
    return [w.replace("$$", "$") for w in words]


NASTY = ["/tmp/with space/home", "/tmp/100%/home", '/tmp/quo"te/home', "/tmp/back\\slash/home", "/tmp/it's/home",
         "/tmp/$HOME/x", "/tmp/%h%%/x", "/tmp/a  b", "/tmp/ü ñ"]


@pytest.mark.parametrize("value", NASTY)
def test_environment_values_and_paths_read_back_exactly(sollama, tmp_path, monkeypatch, value):
    config = tmp_path / value.lstrip("/").replace("/", "_") / "c.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("")
    monkeypatch.setenv("SOLLAMA_HOME", value)
    monkeypatch.setenv("SOLLAMA_OLLAMA_BIN", value + "/ollama")
    result = sollama("--config", str(config), "service", "unit")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    env = dict(systemd_words(_specifiers(ln.removeprefix("Environment=")))[0].split("=", 1)
               for ln in lines if ln.startswith("Environment="))
    assert env["SOLLAMA_HOME"] == value and env["SOLLAMA_OLLAMA_BIN"] == value + "/ollama"
    exec_words = _exec_words(next(ln for ln in lines if ln.startswith("ExecStart=")).removeprefix("ExecStart="))
    assert exec_words[1:] == ["--config", str(config.resolve()), "start", "--foreground"]
    assert Path(exec_words[0]).name == "sollama"

    analyze = shutil.which("systemd-analyze")
    if analyze:
        unit = tmp_path / "sollama-test.service"
        unit.write_text(result.stdout)
        done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        complaints = [ln for ln in done.stderr.splitlines() if "sollama-test.service" in ln
                      and ("syntax" in ln.lower() or "ignoring" in ln.lower() or "invalid" in ln.lower())]
        assert complaints == [], done.stderr


@pytest.mark.parametrize("value", ["/tmp/new\nline", "/tmp/tab\there", "/tmp/esc\x1b[31m", "/tmp/cr\rx"])
def test_a_control_character_is_a_usage_error_naming_the_variable(sollama, monkeypatch, value):
    monkeypatch.setenv("SOLLAMA_HOME", value)
    result = sollama("service", "unit")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "SOLLAMA_HOME" in result.stderr and "control character" in result.stderr and result.stdout == ""


def test_the_faithful_reader_agrees_with_systemd_on_known_lines():
    assert systemd_words('"A=x y %% \\"q\\" \\\\back"') == ['A=x y %% "q" \\back']
    assert systemd_words("a 'b c' \"d\"e") == ["a", "b c", "de"]
    with pytest.raises(AssertionError):
        systemd_words('B=bad"quote')


@pytest.mark.parametrize("value", ["/tmp/with space/home", "/tmp/100%/home", '/tmp/quo"te/home', "/tmp/$HOME/x"])
def test_gateway_unit_runs_sollama_serve_with_the_same_escaping(sollama, tmp_path, monkeypatch, value):
    config = tmp_path / "gw dir" / "c.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("")
    monkeypatch.setenv("SOLLAMA_HOME", value)
    result = sollama("--config", str(config), "service", "unit", "--gateway", "--user")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    env = dict(systemd_words(_specifiers(ln.removeprefix("Environment=")))[0].split("=", 1)
               for ln in lines if ln.startswith("Environment="))
    assert env["SOLLAMA_HOME"] == value
    exec_words = _exec_words(next(ln for ln in lines if ln.startswith("ExecStart=")).removeprefix("ExecStart="))
    assert exec_words[1:] == ["--config", str(config.resolve()), "serve"]
    assert "After=network-online.target sollama.service" in lines and "RestartPreventExitStatus=3" in lines
    assert "WantedBy=default.target" in lines and not any(ln.startswith("User=") for ln in lines)


def test_gateway_and_watch_units_are_one_at_a_time(sollama):
    result = sollama("service", "unit", "--gateway", "--watch")
    assert result.exit_code == ExitCode.USAGE and "one at a time" in result.stderr and result.stdout == ""
