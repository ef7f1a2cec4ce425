"""The real `sollama chat` process driven through a pseudo-terminal: readline input, streaming, Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from ollama_ops.edges.store import Store

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def sollama_executable() -> str:
    beside = Path(sys.executable).with_name("sollama")
    return str(beside if beside.exists() else ROOT / ".venv" / "bin" / "sollama")


class Terminal:
    """A child process on a pty: `expect` waits (bounded) for output, `send` types, `wait` reaps it."""

    def __init__(self, args: list[str]) -> None:
        exe = sollama_executable()
        env = dict(os.environ)
        self.pid, self.fd = pty.fork()  # the child gets the pty as its controlling terminal: ^C is SIGINT
        if self.pid == 0:  # pragma: no cover - the child only execs
            try:
                os.execve(exe, [exe, *args], env)
            finally:
                os._exit(127)
        self.output = b""
        self.pos = 0
        self.status: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data
        return True

    def expect(self, pattern: bytes, timeout: float = 15) -> bytes:
        """Wait until `pattern` (a regex) appears after the last match; returns the text up to its end."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.pos)
            if match:
                seen, self.pos = self.output[self.pos:match.end()], match.end()
                return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.2)) and not regex.search(self.output, self.pos):
                tail = self.output[self.pos:].decode(errors="replace")
                raise AssertionError(f"did not see {pattern!r} within {timeout}s; output after last match:\n{tail}")

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"sollama chat did not exit within {timeout}s:\n{self.output[-2000:]!r}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@pytest.fixture
def terminal():
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal(list(args))
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def chat_bodies(stub) -> list[dict]:
    return [body for method, path, body in stub.requests if path == "/api/chat"]


def test_repl_question_set_interrupt_save_bye(stub, terminal, isolated):
    stub.configure(tokens=3, token_text="hello ")
    term = terminal("--host", stub.host, "chat", "-m", "stub-model")
    term.expect(rb">>> ")
    term.send(b"first question\r")
    term.expect(rb"hello hello hello ")
    term.expect(rb">>> ")

    term.send(b"/set temperature 0.2\r")
    term.expect(rb"set temperature = 0\.2")
    term.expect(rb">>> ")

    stub.configure(tokens=200, token_text="w", token_delay=0.05)
    term.send(b"tell me a long story\r")
    term.expect(rb"wwwww")
    term.send(b"\x03")
    term.expect(rb"\(answer interrupted\)")
    term.expect(rb">>> ")

    term.send(b"/save t1\r")
    term.expect(rb"saved to .*t1\.json")
    term.expect(rb">>> ")
    term.send(b"/bye\r")
    assert term.wait() == 0

    path = isolated / "data" / "chats" / "t1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.glob("*.json")] == ["t1.json"]  # the auto-named file became t1
    data = json.loads(path.read_text())
    messages = data["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "first question"
    assert messages[1] == {"role": "assistant", "content": "hello hello hello "}
    assert messages[2]["content"] == "tell me a long story"
    partial = messages[3]
    assert partial["interrupted"] is True
    assert 5 <= len(partial["content"]) < 200 and set(partial["content"]) == {"w"}
    assert data["options"] == {"temperature": 0.2}

    bodies = chat_bodies(stub)
    assert bodies[-1]["options"] == {"temperature": 0.2}
    assert "options" not in bodies[0]
    with Store() as store:
        assert [(r.command, r.outcome) for r in store.usage_rows()] == [("chat", "ok"), ("chat", "interrupted")]


def test_repl_multiline_input_and_ctrl_c_twice_at_the_prompt(stub, terminal, isolated):
    stub.configure(tokens=2, token_text=["[bold]", "x[/bold]"])
    term = terminal("--host", stub.host, "chat", "-m", "stub-model")
    term.expect(rb">>> ")
    term.send(b'"""\r')
    term.expect(rb"\.\.\. ")
    term.send(b"line one\r")
    term.expect(rb"\.\.\. ")
    term.send(b'line two"""\r')
    term.expect(rb"\[bold\]x\[/bold\]")  # model text verbatim: markup stays literal
    term.expect(rb">>> ")
    assert chat_bodies(stub)[-1]["messages"] == [{"role": "user", "content": "line one\nline two"}]

    # The prompt is drawn just before readline waits for input; a SIGINT in between is only noticed at the next
    # key (a CPython readline race no typist can hit), so wait a moment as a person would.
    time.sleep(0.3)
    term.send(b"\x03")
    term.expect(rb"press Ctrl-C again or /bye to exit")
    term.expect(rb">>> ")
    time.sleep(0.3)
    term.send(b"\x03")
    assert term.wait() == 0
    saved = list((isolated / "data" / "chats").glob("chat-*.json"))
    assert len(saved) == 1 and len(json.loads(saved[0].read_text())["messages"]) == 2


def test_repl_ctrl_d_exits_0_and_history_file_is_private(stub, terminal, isolated):
    term = terminal("--host", stub.host, "chat", "-m", "stub-model")
    term.expect(rb">>> ")
    term.send(b"/show\r")
    term.expect(rb"architecture\s+llama")
    term.expect(rb">>> ")
    term.send(b"\x04")
    assert term.wait() == 0
    history = isolated / "data" / "chat_history"
    assert "/show" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


def test_generate_on_a_terminal_ends_the_line(stub, terminal):
    # Off a terminal stdout is byte-exact (tests/test_generate.py); on one the answer's line is ended.
    stub.configure(tokens=2, token_text="ab")
    term = terminal("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert term.wait() == 0
    assert term.output == b"abab\r\n"


def test_markdown_renders_the_finished_answer(stub, terminal):
    stub.configure(tokens=2, token_text=["# Title\n\n", "some **strong** words"])
    term = terminal("--host", stub.host, "chat", "-m", "stub-model", "--markdown")
    term.expect(rb">>> ")
    term.send(b"hi\r")
    shown = term.expect(rb">>> ")
    assert b"Title" in shown and b"some strong words" in shown
    assert b"# Title" not in shown and b"**strong**" not in shown
    term.send(b"/bye\r")
    assert term.wait() == 0


def test_interactive_chat_with_a_missing_model_fails_at_once(stub, terminal):
    term = terminal("--host", stub.host, "chat", "-m", "nothere")
    assert term.wait() == 1
    assert b"model 'nothere' not found; installed: stub-model:latest" in term.output
