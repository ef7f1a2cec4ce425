"""Docs that cannot rot: every `$ sollama …` block of README.md and docs/ runs, in a fresh SOLLAMA_HOME and HOME
on a free port, and must exit as shown (0, or the code its `echo $?` prints) with output of the shape shown (the
first word of each shown line, in order). A command or flag renamed in code fails here. How blocks are marked:
see tests/docs_blocks.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port, ollama_binary
from tests.docs_blocks import Block, collect, in_order, parse, shape

BLOCKS = collect()
RUN = [b for b in BLOCKS if b.mode != "skip"]
PLAIN = [b for b in RUN if b.mode == "plain" and not b.starts_daemon]
DAEMON = [b for b in RUN if b.mode == "daemon" or b.starts_daemon]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, models_dir: Path | None = None, binary: str | None = ollama_binary()) -> dict[str, str]:
    home = tmp_path / "home"
    (home / "sollama").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("SOLLAMA_", "OLLAMA_")) or k in ("GITHUB_STEP_SUMMARY",))}
    env.update({"HOME": str(home), "SOLLAMA_HOME": str(home / "sollama"), "NO_COLOR": "1", "COLUMNS": "120",
                "TERM": "dumb", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "SOLLAMA_SERVER_HOST": f"127.0.0.1:{free_port()}", "OLLAMA_NOPRUNE": "1"})
    if models_dir is not None:
        env["SOLLAMA_SERVER_MODELS_DIR"] = str(models_dir)
    if binary is not None:
        env["SOLLAMA_OLLAMA_BIN"] = binary
    return env


def _run(line: str, env: dict[str, str], cwd: Path, *, apart: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one shown command; stderr into stdout, interleaved as on a terminal, unless `apart`."""
    return subprocess.run(["bash", "-c", line], env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE if apart else subprocess.STDOUT, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def _check(block: Block, env: dict[str, str], cwd: Path) -> None:
    for command in block.commands:
        where = f"{block.id}: $ {command.line}"
        assert command.line.startswith("sollama"), f"{where}: only sollama commands run in a `$ sollama` block"
        # the model's own text (stdout, no newline when piped) is not reproducible; what follows on stderr is
        model_text = command.line.split()[1:2] in (["generate"], ["chat"])
        done = _run(command.line, env, cwd, apart=model_text)
        got = (done.stderr if model_text else done.stdout).splitlines()
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout}{done.stderr or ''}"
        expected = shape(command.output)
        if command.line.rstrip().endswith("echo $?"):
            assert got[-1:] == [command.output[-1].strip()], f"{where}: exit code\n{got}"
        if model_text:
            expected = expected[1:]
        missing = in_order(expected, got)
        assert not missing, f"{where}: shown output lines starting with {missing} not found in order in:\n" + \
            "\n".join(got)


def _stop(env: dict[str, str], cwd: Path) -> None:
    """Stop a daemon the block started (sollama verifies it by pid, creation time and command line)."""
    _run("sollama stop", env, cwd)


@pytest.mark.parametrize("block", PLAIN, ids=[b.id for b in PLAIN])
def test_doc_block(block: Block, tmp_path: Path) -> None:
    env = _env(tmp_path)
    _check(block, env, tmp_path)


@pytest.mark.parametrize("block", DAEMON, ids=[b.id for b in DAEMON])
def test_doc_block_with_daemon(block: Block, ollama_server, tmp_path: Path) -> None:
    env = _env(tmp_path, ollama_server.models_dir, ollama_server.binary)
    try:
        if block.mode == "daemon":
            started = _run("sollama start", env, tmp_path)
            assert started.returncode == 0, started.stdout
        _check(block, env, tmp_path)
    finally:
        _stop(env, tmp_path)


def test_docs_have_runnable_blocks_and_few_skips() -> None:
    assert len(RUN) >= 8, [b.id for b in BLOCKS]
    skipped = [b for b in BLOCKS if b.mode == "skip"]
    for block in skipped:
        assert block.reason, f"{block.id}: a skipped block must say why (<!-- docs-test: skip REASON -->)"
    assert len(skipped) <= max(3, len(BLOCKS) // 5), [b.id for b in skipped]
    unknown = [b.id for b in BLOCKS if b.mode not in ("plain", "daemon", "skip")]
    assert not unknown, f"unknown docs-test markers: {unknown}"


def test_a_renamed_command_fails_its_block(tmp_path: Path) -> None:
    # what the suite would see if `service unit` were renamed: the block exits 2, and the check says where
    block = parse("```console\n$ sollama service unitt\n[Unit]\n```\n", "docs/x.md")[0]
    with pytest.raises(AssertionError, match=r"docs/x.md:1: \$ sollama service unitt: exit 2"):
        _check(block, _env(tmp_path), tmp_path)


def test_output_shape_is_checked(tmp_path: Path) -> None:
    block = parse("```console\n$ sollama config path\nnot-what-it-prints\n```\n", "docs/y.md")[0]
    with pytest.raises(AssertionError, match="not-what-it-prints"):
        _check(block, _env(tmp_path), tmp_path)


def test_markers_and_commands_are_parsed() -> None:
    text = ("Intro\n<!-- docs-test: skip needs a GPU -->\n```console\n$ sollama status\nhealthy  x\n"
            "$ sollama memory\nbudget 1 GiB\n```\n\n```bash\nsollama start  # not a $ line: not collected\n```\n"
            "<!-- docs-test: daemon -->\n~~~console\n$ sollama models list\n~~~\n")
    blocks = parse(text, "t.md")
    assert [(b.line, b.mode, b.reason) for b in blocks] == [(3, "skip", "needs a GPU"), (14, "daemon", "")]
    assert [(c.line, c.output) for c in blocks[0].commands] == [("sollama status", ["healthy  x"]),
                                                                ("sollama memory", ["budget 1 GiB"])]
    assert shape(["│ TTFT   │   6 │", "✓ pass binary  x", "…", "  pid  28487", "9 passed", "ExecStart=/a/b c"]) == [
        "TTFT", "pass", "pid", "ExecStart="]


if IN_CI:
    def test_ci_runs_the_daemon_blocks() -> None:
        assert DAEMON, "no docs block runs against the real daemon"
