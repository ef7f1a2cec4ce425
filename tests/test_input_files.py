"""What users hand us as files or streams: config files, --prompts files, --file, --format schemas, stdin.

Binary or non-UTF-8 bytes, a FIFO, a device, a directory or a huge file are one-line errors (config: exit 3,
inputs: exit 2) naming the path; nothing blocks (a FIFO is never opened) and no traceback or "internal error"
reaches the user, whatever the bytes (hypothesis)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Result, free_port

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result.stderr.strip()


def _without_blocking(call):  # type: ignore[no-untyped-def]
    """Run `call` in a thread; if it blocks on a FIFO, unblock it by opening the FIFO's other end, and fail."""
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", call()), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "blocked"
    return box["result"]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _huge(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:  # sparse: cheap however large
        fh.truncate(size)
    return path


# -- config files: exit 3 --------------------------------------------------------------------------------------

def test_config_that_is_a_fifo_is_refused_without_opening_it(sollama, fifo):
    result = _without_blocking(lambda: sollama("--config", str(fifo), "config", "show"))
    assert _one_line(result, 3) == f"error: cannot read config file {fifo}: it is a named pipe (FIFO), not a " \
                                   "regular file"


def test_config_that_is_a_device_or_a_directory_is_refused(sollama, tmp_path):
    assert "it is a character device" in _one_line(sollama("--config", "/dev/zero", "config", "show"), 3)
    assert "it is a directory" in _one_line(sollama("--config", str(tmp_path), "config", "show"), 3)


def test_config_above_one_mib_is_refused(sollama, tmp_path):
    big = _huge(tmp_path / "big.yaml", (1 << 20) + 1)
    assert _one_line(sollama("--config", str(big), "config", "show"), 3) == \
        f"error: config file {big} is too large: 1.0 MiB (the limit is 1.0 MiB)"


@pytest.mark.parametrize("data, message", [
    (b"client:\n  retries: \xff\n", "is not UTF-8 text (byte 0xff at line 2, column 12)"),
    (b"client:\n  retries: 1\x00\n", "is binary, not text (a NUL byte at line 2, column 13)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text (byte 0x89 at line 1, column 1)"),
])
def test_binary_config_names_the_byte_and_where(sollama, tmp_path, data, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(data)
    assert _one_line(sollama("--config", str(cfg), "config", "show"), 3) == f"error: config file {cfg} {message}"


def test_config_validate_refuses_a_fifo_too(sollama, fifo):
    result = _without_blocking(lambda: sollama("config", "validate", str(fifo)))
    assert "named pipe" in _one_line(result, 3)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_config_are_valid_or_exit_3(sollama, tmp_path, data):
    cfg = tmp_path / "fuzz.yaml"
    cfg.write_bytes(data)
    result = sollama("--config", str(cfg), "config", "show", "--json")
    assert result.exit_code in (0, 3), result.output
    if result.exit_code == 3:
        _one_line(result, 3)


# -- --prompts files (bench): exit 2 ---------------------------------------------------------------------------

def _bench(sollama, prompts: str) -> Result:  # type: ignore[no-untyped-def]
    # nothing listens on the port: prompts are read first, so a good file gets as far as connecting (exit 4)
    return sollama("--host", f"127.0.0.1:{free_port()}", "bench", "-m", "m", "-n", "1", "--warmup", "0",
                   "--prompts", prompts)


def test_prompts_fifo_device_directory_and_huge_file_are_usage_errors(sollama, fifo, tmp_path):
    assert "named pipe" in _one_line(_without_blocking(lambda: _bench(sollama, str(fifo))), 2)
    assert "character device" in _one_line(_bench(sollama, "/dev/urandom"), 2)
    assert "it is a directory" in _one_line(_bench(sollama, str(tmp_path)), 2)
    big = _huge(tmp_path / "big.txt", (64 << 20) + 1)
    assert _one_line(_bench(sollama, str(big)), 2) == \
        f"error: prompts file {big} is too large: 64.0 MiB (the limit is 64.0 MiB)"


def test_binary_prompts_file_is_a_usage_error(sollama, tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"hello\nwor\xc3(ld\n")
    assert _one_line(_bench(sollama, str(path)), 2) == \
        f"error: prompts file {path} is not UTF-8 text (byte 0xc3 at line 2, column 4)"


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_as_prompts_never_crash(sollama, tmp_path, data):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(data)
    result = _bench(sollama, str(path))
    assert result.exit_code in (2, 4), result.output
    _one_line(result, result.exit_code)


# -- generate: --file, --format schema, stdin -------------------------------------------------------------------

def _generate(sollama, *args: str, input: bytes | str | None = None) -> Result:  # type: ignore[no-untyped-def]
    return sollama("--host", f"127.0.0.1:{free_port()}", "generate", "-m", "m", *args, input=input)


def test_generate_file_that_is_a_fifo_device_or_binary_is_a_usage_error(sollama, fifo, tmp_path):
    assert "named pipe" in _one_line(_without_blocking(lambda: _generate(sollama, "--file", str(fifo))), 2)
    assert "character device" in _one_line(_generate(sollama, "--file", "/dev/zero"), 2)
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
    assert _one_line(_generate(sollama, "--file", str(binary)), 2) == \
        f"error: --file {binary} is binary, not text (a NUL byte at line 1, column 8)"
    assert "named pipe" in _one_line(_without_blocking(lambda: _generate(sollama, "hi", "--format", str(fifo))), 2)


@pytest.mark.parametrize("data, message", [
    (b"caf\xe9\n", "error: stdin is not UTF-8 text (byte 0xe9 at line 1, column 4)"),
    (b"ok\n\x00\x01\x02", "error: stdin is binary, not text (a NUL byte at line 2, column 1)"),
])
def test_binary_stdin_is_a_usage_error(sollama, data, message):
    assert _one_line(_generate(sollama, "-", input=data), 2) == message
    assert _one_line(sollama("--host", f"127.0.0.1:{free_port()}", "chat", "-m", "m", input=data), 2) == message


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_on_stdin_never_crash(sollama, data):
    result = _generate(sollama, input=data)
    assert result.exit_code in (2, 4), result.output
    _one_line(result, result.exit_code)


@pytest.mark.parametrize("args, stdin", [
    (("",), None), (("   \n\t ",), None), (("-",), ""), (("-",), " \n\n"), ((), "\n"),
])
def test_an_empty_or_blank_prompt_is_a_usage_error_and_sends_nothing(sollama, stub, args, stdin):
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", *args, input=stdin)
    assert _one_line(result, 2).startswith("error: the prompt is empty")
    assert stub.request_count == 0


def test_a_prompt_with_surrounding_whitespace_is_sent_as_given(sollama, stub):
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "-", input="  hi\n")
    assert result.exit_code == 0, result.output
    assert [b for m, p, b in stub.requests if p == "/api/generate"][-1]["prompt"] == "  hi\n"
