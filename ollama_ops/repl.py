"""Terminal I/O for `generate` and `chat`: raw text output, the interactive chat loop, and the piped one-shot.

The chat's logic (commands, conversation, transcripts) is `services.chat.ChatSession`; this module only reads
lines (stdlib readline: editing and a history file), streams answers to stdout verbatim, and shows replies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TextIO

from rich.console import Console

from ollama_ops.errors import SollamaError, UsageError
from ollama_ops.interrupts import terminated
from ollama_ops.render.console import display_error, display_info, display_warning
from ollama_ops.render.safe import clean_text
from ollama_ops.services.chat import ChatSession, Multiline, Reply, parse_command
from ollama_ops.services.generate import GenerationReport, UsagePolicy

PROMPT, CONTINUE = ">>> ", "... "
EXIT_HINT = "press Ctrl-C again or /bye to exit"


class RawOutput:
    """Writes model text to a stream exactly as received (UTF-8, flushed per piece, never read as markup), except
    that a terminal gets it without control characters (render.safe.clean_text).

    `finish()` ends the line only on a terminal, so redirected output stays byte-exact."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.wrote = False
        self.at_line_start = True

    def write(self, text: str) -> None:
        if self.isatty():  # a terminal must not run escape sequences from the model; a pipe gets the exact text
            text = clean_text(text)
        if not text:
            return
        buffer = getattr(self.stream, "buffer", None)
        if buffer is not None:
            self.stream.flush()
            buffer.write(text.encode("utf-8", "replace"))
            buffer.flush()
        else:
            self.stream.write(text)
            self.stream.flush()
        self.wrote = True
        self.at_line_start = text.endswith("\n")

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def end_line(self) -> None:
        """Finish a started line (so a prompt or message that follows starts on its own line)."""
        if self.wrote and not self.at_line_start:
            self.write("\n")

    def finish(self) -> None:
        if self.isatty():
            self.end_line()


def history_file() -> Path:
    from ollama_ops import paths

    return paths.data_dir(create=True) / "chat_history"


class ChatRepl:
    """The interactive loop: read a line (or a `\"\"\"` block), run a command or ask the model, repeat."""

    def __init__(self, session: ChatSession, client: Any, *, out: Console, err: Console, read_timeout: float,
                 usage: UsagePolicy, markdown: bool = False, input_fn: Callable[[str], str] = input) -> None:
        self.session, self.client = session, client
        self.out, self.err = out, err
        self.read_timeout, self.usage = read_timeout, usage
        self.markdown = markdown
        self.input = input_fn

    # -- reading -----------------------------------------------------------------------------------------------

    def read_message(self) -> str:
        """One logical input: a line, or a whole `\"\"\"` block. Raises EOFError / KeyboardInterrupt."""
        block = Multiline()
        try:
            while True:
                text = block.feed(self.input(CONTINUE if block.active else PROMPT))
                if text is not None:
                    return text
        except KeyboardInterrupt:
            block.cancel()
            raise

    def run(self) -> int:
        """Loop until /bye, Ctrl-D, or Ctrl-C twice at the prompt; returns the exit status (0)."""
        display_info(self.err, f"chatting with {self.session.model} (transcript '{self.session.name}'); "
                               "/help for commands, /bye to exit")
        asked_to_exit = False
        while True:
            try:
                line = self.read_message()
            except EOFError:
                self.out.file.write("\n")
                return 0
            except KeyboardInterrupt:
                self.out.file.write("\n")
                if terminated():  # SIGTERM: end, do not ask for a second Ctrl-C
                    raise
                if asked_to_exit:
                    return 0
                asked_to_exit = True
                display_info(self.err, EXIT_HINT)
                continue
            asked_to_exit = False
            cmd = parse_command(line)
            if cmd.kind == "empty":
                continue
            if cmd.kind == "message":
                self.answer(cmd.arg)
                continue
            try:
                reply = self.session.execute(cmd, self.client)
            except SollamaError as exc:
                display_error(self.err, exc.one_line())
                continue
            if reply.kind == "exit":
                return 0
            self.show(reply)

    # -- answering ---------------------------------------------------------------------------------------------

    def answer(self, text: str) -> None:
        """Stream one answer; Ctrl-C cancels it (kept, marked, in the transcript) and returns to the prompt."""
        raw = RawOutput(self.out.file)
        pieces: list[str] = []
        sink = pieces.append if self.markdown else raw.write
        status = self.err.status("generating…") if self.markdown and self.err.is_terminal else None
        report: GenerationReport | None = None
        try:
            if status:
                status.start()
            report = self.session.ask(self.client, text, on_text=sink, read_timeout=self.read_timeout,
                                      usage=self.usage)
        except KeyboardInterrupt:
            self._finish_answer(raw, status, pieces)
            display_info(self.err, "(answer interrupted)")
            if terminated():  # SIGTERM: the partial answer is kept, then the chat ends
                raise
        except SollamaError as exc:
            self._finish_answer(raw, status, pieces)
            display_error(self.err, exc.one_line())
        else:
            self._finish_answer(raw, status, pieces)
            if self.session.verbose:
                from ollama_ops.render.generate import render_stats

                render_stats(self.err, report)
        finally:
            self.autosave()

    def _finish_answer(self, raw: RawOutput, status: Any, pieces: list[str]) -> None:
        if status:
            status.stop()
        if self.markdown:
            if pieces:
                from ollama_ops.render.generate import render_markdown

                render_markdown(self.out, "".join(pieces))
        else:
            raw.end_line()

    def autosave(self) -> None:
        try:
            self.session.save()
        except (OSError, SollamaError) as exc:
            display_warning(self.err, f"transcript not saved: {getattr(exc, 'strerror', None) or exc}")

    def show(self, reply: Reply) -> None:
        from ollama_ops.render import generate as views

        if reply.kind == "help":
            views.render_help(self.out, reply.text)
        elif reply.kind == "show":
            views.render_show(self.out, reply.data)
        elif reply.kind == "stats":
            views.render_stats(self.out, reply.data)
        else:
            display_info(self.err, reply.text)


def run_interactive(repl: ChatRepl) -> int:
    """Run the REPL with readline editing and a private history file under the data dir."""
    try:
        import readline
    except ImportError:  # e.g. a Python built without it: plain input() still works
        return repl.run()
    path = history_file()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    try:
        return repl.run()
    finally:
        try:
            readline.write_history_file(path)
            os.chmod(path, 0o600)
        except OSError:
            pass


def run_piped(session: ChatSession, client: Any, *, stdin: TextIO, out: IO[str] | None, err: Console,
              read_timeout: float, usage: UsagePolicy) -> GenerationReport:
    """`echo hi | sollama chat`: the whole input is one message; the answer is streamed to `out` (if given)
    and ended with a newline, and the transcript is saved."""
    from ollama_ops.edges.textfile import read_stdin_text

    text = read_stdin_text(stdin, error=UsageError)
    if not text.strip():
        raise UsageError("no message on stdin")
    raw = RawOutput(out) if out is not None else None
    try:
        return session.ask(client, text, on_text=raw.write if raw else None, read_timeout=read_timeout,
                           usage=usage)
    finally:
        if raw:
            raw.end_line()
        try:
            session.save()
        except (OSError, SollamaError) as exc:
            display_warning(err, f"transcript not saved: {getattr(exc, 'strerror', None) or exc}")


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
