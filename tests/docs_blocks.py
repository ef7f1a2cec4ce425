"""The runnable shell blocks of README.md and docs/ (pure parsing, used by tests/test_docs.py).

A fenced block is runnable when one of its lines starts with `$ sollama`. Every `$ ` line in it is a command
(only `sollama …` commands are allowed there: put other tools' commands in a block without `$`); the lines after a
command, up to the next one, are the output it shows. An HTML comment on the line right before the fence sets how
the block runs:

    <!-- docs-test: daemon -->          start a daemon (SmolLM2 imported) before the block, stop it after
    <!-- docs-test: skip REASON -->     do not run it (REASON is required and shown)

A block that starts the daemon itself (`$ sollama start`) needs no marker; every block runs in a fresh
SOLLAMA_HOME and HOME on a free port, and the daemon is stopped after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)(.*?)-->")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w-]*)")
# Lines of shown output that identify nothing (ellipses, blank), and box-drawing/bullet symbols before a word.
_LEAD = re.compile(r"^[\s│┃┏┗┡└├╭╰║|✓✗✔✘•*·⚠!-]+")


@dataclass
class Command:
    line: str                                  # the shell text after "$ "
    output: list[str] = field(default_factory=list)


@dataclass
class Block:
    path: str
    line: int                                  # 1-based line of the opening fence
    commands: list[Command]
    mode: str = "plain"                        # plain | daemon | skip
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def starts_daemon(self) -> bool:
        return any(re.match(r"sollama\s+(start|restart)\b", c.line) for c in self.commands)


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def parse(text: str, path: str) -> list[Block]:
    """The runnable blocks of one Markdown text."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start = match.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if not any(b.startswith("$ sollama") for b in body):
            continue
        commands: list[Command] = []
        for b in body:
            if b.startswith("$ "):
                commands.append(Command(b[2:].strip()))
            elif commands:
                commands[-1].output.append(b)
        for command in commands:  # blank lines between a command's output and the next command are not output
            while command.output and not command.output[-1].strip():
                command.output.pop()
        marker = MARKER.search(lines[start - 1]) if start else None
        block = Block(path=path, line=start + 1, commands=commands)
        if marker:
            block.mode, block.reason = marker.group(1), marker.group(2).strip()
        blocks.append(block)
    return blocks


def collect(root: Path = ROOT) -> list[Block]:
    out: list[Block] = []
    for f in doc_files(root):
        if f.is_file():
            out += parse(f.read_text(encoding="utf-8"), str(f.relative_to(root)))
    return out


def first_word(line: str) -> str:
    """The word a shown output line starts with, past box-drawing and bullet symbols, and up to its first '=' for a
    KEY=value word (values differ between machines); '' for none."""
    words = _LEAD.sub("", line).split()
    if not words:
        return ""
    key, eq, _ = words[0].partition("=")
    return key + eq


def shape(output: list[str]) -> list[str]:
    """What a command's shown output promises: the first word of each line that has one and is not an elision
    (…) or a bare number (counts and exit codes vary; an `echo $?` code is checked on its own)."""
    words = []
    for line in output:
        word = first_word(line)
        if not word or "…" in word or word == "..." or word.replace(".", "").isdigit():
            continue
        words.append(word)
    return words


def in_order(expected: list[str], actual_lines: list[str]) -> list[str]:
    """The expected first words that do not appear, in order, among the actual lines' first words."""
    actual = [first_word(line) for line in actual_lines]
    missing, pos = [], 0
    for word in expected:
        try:
            pos = actual.index(word, pos) + 1
        except ValueError:
            missing.append(word)
    return missing
