"""Terminal escapes from a server or a model never reach the terminal raw (tables, status, headers, names, error
messages, JSON), while generated text on a pipe stays byte-exact. One sanitizer: render/safe.py."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.render.console import make_console
from ollama_ops.render.safe import clean_text, escape_json_text
from ollama_ops.repl import RawOutput
from tests.conftest import Result

CSI = "\x1b[2J\x1b[31m"  # clear screen, red
OSC = "\x1b]0;pwned\x07\x1b]8;;http://evil\x1b\\"  # window title, hyperlink
C1 = "\x9b31m\x9d0;t\x9c"  # 8-bit CSI / OSC / ST
BIDI = "\u202e"  # right-to-left override
EVIL = f"x{CSI}{OSC}{C1}{BIDI}\b\r\x00y"
UNSAFE = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0),
                           *range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def _assert_clean(text: str) -> None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if c in UNSAFE})
    assert not bad, (bad, text)


def _assert_result_clean(result: Result) -> None:
    _assert_clean(result.stdout)
    _assert_clean(result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# -- the function ----------------------------------------------------------------------------------------------

def test_clean_text_drops_controls_and_keeps_the_rest():
    assert clean_text(EVIL) == "x[2J[31m]0;pwned]8;;http://evil\\31m0;ty"
    assert clean_text("a\tb\nc ünï ✓ 中") == "a\tb\nc ünï ✓ 中"


@given(st.text())
def test_clean_text_leaves_no_control_and_is_idempotent(text):
    cleaned = clean_text(text)
    _assert_clean(cleaned)
    assert clean_text(cleaned) == cleaned
    assert [c for c in text if c not in UNSAFE] == list(cleaned)


@given(st.text())
def test_escaped_json_is_the_same_document(text):
    document = escape_json_text(json.dumps({"k": text}, ensure_ascii=False))
    _assert_clean(document)
    assert json.loads(document) == {"k": text}


@pytest.mark.parametrize("tty", [True, False])
def test_every_console_cleans_what_it_renders_tables_included(tty):
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    buffer.isatty = lambda: tty  # type: ignore[method-assign]
    console = make_console(buffer)
    table = Table("NAME", "SIZE")
    table.add_row(EVIL, "1")
    table.add_row("plain", "2")
    console.print(table)
    console.print(Text(EVIL, style="bold"))
    console.print(EVIL)
    text = buffer.getvalue()
    assert "x[2J[31m]0;pwned" in text
    if not tty:
        _assert_clean(text)
    else:  # Rich's own styling is the only escape left: every ESC starts an SGR sequence Rich wrote
        assert "\x1b[2J" not in text and "\x1b]" not in text and "\x9b" not in text
    lines = [ln for ln in text.splitlines() if "│" in ln or "┃" in ln]
    assert len({len(clean_text(ln.replace("\x1b[1m", "").replace("\x1b[0m", ""))) for ln in lines}) <= 1


def test_raw_output_cleans_on_a_terminal_and_is_exact_on_a_pipe():
    pipe, tty = io.StringIO(), io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    for stream in (pipe, tty):
        out = RawOutput(stream)
        out.write(EVIL)
        out.write("\n")
    assert pipe.getvalue() == EVIL + "\n"
    assert tty.getvalue() == clean_text(EVIL) + "\n"


# -- through the CLI, against a server that sends escapes everywhere ---------------------------------------------

@pytest.fixture
def evil_stub(stub):  # type: ignore[no-untyped-def]
    stub.models = [f"ev{CSI}il:latest", f"tag{OSC}:7b", f"c1{C1}{BIDI}:x"]
    stub.loaded = {f"ev{CSI}il:latest"}
    stub.version = f"0.1{CSI}{OSC}"
    return stub


@pytest.mark.parametrize("args", [
    ("models", "list"), ("status",), ("models", "show", f"ev{CSI}il"), ("models", "show", "nope"),
    ("models", "unload", f"ev{CSI}il"), ("memory",), ("bench", "-m", "nope", "-n", "1"),
])
def test_names_versions_and_tables_from_the_server_are_clean(sollama, evil_stub, args):
    result = sollama("--host", evil_stub.host, *args)
    _assert_result_clean(result)
    assert result.stdout or result.stderr


def test_server_error_messages_are_clean(sollama, stub):
    stub.configure(status=500, error=f"runner died {CSI}{OSC}{C1}")
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 1, result.output
    _assert_result_clean(result)
    assert "runner died [2J[31m]0;pwned" in result.stderr


def test_json_output_escapes_c1_and_bidi(sollama, evil_stub):
    result = sollama("--host", evil_stub.host, "models", "list", "--json")
    assert result.exit_code == 0, result.output
    _assert_result_clean(result)
    names = [m["name"] for m in json.loads(result.stdout)["models"]]
    assert f"c1{C1}{BIDI}:x" in names  # the data itself is intact


def test_generated_text_on_a_pipe_is_byte_exact(sollama, stub):
    stub.configure(tokens=1, token_text=EVIL)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == EVIL
