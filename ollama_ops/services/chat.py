"""A chat conversation: the messages, the options, the REPL's slash commands, and the saved transcripts.

Terminal I/O lives in `ollama_ops.repl`; this module only turns input lines into `Command`s (pure), applies
them to a `ChatSession` (which returns a `Reply` to show), and streams answers through `run_generation`.
Transcripts are JSON files under `data_dir()/chats/NAME.json`, readable only by the user (0600, dir 0700).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.errors import SollamaError, UsageError
from ollama_ops.services.generate import GenerationReport, TextSink, UsagePolicy, run_generation

TRANSCRIPT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
QUOTES = '"""'

HELP = """\
Available commands:
  /set KEY VALUE     set a model option (e.g. /set temperature 0.2; also /set parameter KEY VALUE)
  /set system TEXT   set the system message (same as /system TEXT)
  /set verbose       show timings after every answer (/set quiet turns it off)
  /unset KEY         drop an option (or 'system')
  /system TEXT       set the system message
  /model NAME        switch to another installed model
  /show              model information and the current options
  /stats             timings of the last answer
  /clear             forget the conversation so far
  /save NAME         save the transcript as NAME (later turns are saved there too)
  /load NAME         continue a saved transcript
  /bye, /exit        leave (Ctrl-D too)
  /help, /?          this help
Start a message with \"\"\" to write several lines; end it with \"\"\".
Ctrl-C stops an answer; at an empty prompt, Ctrl-C twice leaves."""


# -- input parsing (pure) ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One line of input, understood. `kind` is message, empty, help, bye, clear, model, system, set, unset,
    verbose, show, save, load, stats, or invalid (then `error` says why)."""

    kind: str
    arg: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _invalid(message: str) -> Command:
    return Command("invalid", error=message)


def check_name(name: str) -> str:
    """A transcript name: letters, digits, '.', '_', '-' (no paths); raises UsageError otherwise."""
    if not NAME_RE.match(name) or name in (".", ".."):
        raise UsageError(f"invalid chat name {name!r}: use letters, digits, '.', '_' or '-' (no slashes)")
    return name


def _parse_set(rest: str) -> Command:
    from ollama_ops.core.options import parse_options

    key, _, value = rest.strip().partition(" ")
    value = value.strip()
    if key == "parameter":
        key, _, value = value.partition(" ")
        value = value.strip()
    if key == "system":
        return Command("system", arg=value) if value else _invalid("usage: /set system TEXT")
    if key in ("verbose", "quiet") and not value:
        return Command("verbose", arg="on" if key == "verbose" else "off")
    if not key or not value:
        return _invalid("usage: /set KEY VALUE (e.g. /set temperature 0.2)")
    try:
        return Command("set", arg=key, options=parse_options([f"{key}={value}"]))
    except UsageError as exc:
        return _invalid(exc.message)


def parse_command(line: str) -> Command:
    """Understand one input line. Anything not starting with '/' is a message to the model."""
    text = line.strip()
    if not text:
        return Command("empty")
    if not text.startswith("/"):
        return Command("message", arg=line)
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    word = word.lower()
    if word in ("/help", "/?"):
        return Command("help")
    if word in ("/bye", "/exit", "/quit"):
        return Command("bye")
    if word in ("/clear", "/show", "/stats"):
        return Command(word[1:]) if not rest else _invalid(f"{word} takes no argument")
    if word == "/set":
        return _parse_set(rest)
    if word == "/unset":
        return Command("unset", arg=rest) if rest and " " not in rest else _invalid("usage: /unset KEY")
    if word == "/system":
        return Command("system", arg=rest) if rest else _invalid("usage: /system TEXT")
    if word == "/model":
        return Command("model", arg=rest) if rest and " " not in rest else _invalid("usage: /model NAME")
    if word in ("/save", "/load"):
        if not rest:
            return _invalid(f"usage: {word} NAME")
        try:
            return Command(word[1:], arg=check_name(rest))
        except UsageError as exc:
            return _invalid(exc.message)
    return _invalid(f"unknown command {word!r}; /help lists the commands")


class Multiline:
    """Collects a `\"\"\"`-quoted block of lines (pure). `feed` returns the finished text, or None for more."""

    def __init__(self) -> None:
        self.lines: list[str] | None = None

    @property
    def active(self) -> bool:
        return self.lines is not None

    def feed(self, line: str) -> str | None:
        if self.lines is None:
            stripped = line.lstrip()
            if not stripped.startswith(QUOTES):
                return line
            body = stripped[len(QUOTES):]
            if body.rstrip().endswith(QUOTES):
                return body.rstrip()[: -len(QUOTES)]
            self.lines = [body] if body else []
            return None
        if line.rstrip().endswith(QUOTES):
            last = line.rstrip()[: -len(QUOTES)]
            if last.strip():  # a closing `"""` alone adds no empty last line
                self.lines.append(last)
            text, self.lines = "\n".join(self.lines), None
            return text
        self.lines.append(line)
        return None

    def cancel(self) -> None:
        self.lines = None


# -- transcripts -------------------------------------------------------------------------------------------------

def chats_dir(create: bool = False) -> Path:
    """Where transcripts live (0700)."""
    path = paths.data_dir(create=create) / "chats"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    return path


def transcript_path(name: str) -> Path:
    return chats_dir() / f"{check_name(name)}.json"


def write_private_json(path: Path, data: Any) -> None:
    """Write atomically with mode 0600 (a temp file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def saved_names() -> list[str]:
    directory = chats_dir()
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def read_transcript(name: str) -> dict[str, Any]:
    """A saved transcript, checked; a missing or damaged file is a one-line SollamaError."""
    path = transcript_path(name)
    if not path.is_file():
        listing = ", ".join(saved_names()) or "none"
        raise SollamaError(f"no saved chat '{name}' in {path.parent} (saved: {listing})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SollamaError(f"chat transcript {path} cannot be read: {exc}") from exc
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise SollamaError(f"chat transcript {path} is damaged: expected a 'messages' list of role/content objects")
    return data


def auto_name(now: float) -> str:
    """The name of a transcript nobody named: the local start time."""
    return time.strftime("chat-%Y%m%d-%H%M%S", time.localtime(now))


# -- the session ---------------------------------------------------------------------------------------------------

@dataclass
class Reply:
    """What a slash command produced, for the terminal layer to show. `kind`: info, help, show, stats, exit."""

    kind: str
    text: str = ""
    data: Any = None


@dataclass
class ShowView:
    """`/show`: the model's details and this session's settings."""

    details: Any  # services.models.ModelDetails
    options: dict[str, Any]
    system: str | None
    transcript: str
    messages: int


class ChatSession:
    """One conversation: model, system message, options, messages, the last answer's report, and where it is
    saved. Messages are dicts with role and content; an answer cut short also carries `"interrupted": true`
    (and `"error"` when a failure, not Ctrl-C, cut it)."""

    def __init__(self, model: str, *, system: str | None = None, options: dict[str, Any] | None = None,
                 keep_alive: str | int | float | None = None, format: str | dict[str, Any] | None = None,
                 name: str | None = None, now: Callable[[], float] = time.time) -> None:
        self.model = model
        self.system = system
        self.options: dict[str, Any] = dict(options or {})
        self.keep_alive = keep_alive
        self.format = format
        self.messages: list[dict[str, Any]] = []
        self.last: GenerationReport | None = None
        self.verbose = False
        self.created = now()
        self.name = check_name(name) if name else auto_name(self.created)
        self.named = name is not None

    # -- the model ---------------------------------------------------------------------------------------------

    def request(self) -> GenerateRequest:
        """The /api/chat request for the conversation so far (markers stay out of what the model sees)."""
        messages = [{"role": m["role"], "content": m["content"]} for m in self.messages]
        return GenerateRequest(model=self.model, messages=messages, system=self.system or None,
                               options=dict(self.options), format=self.format, keep_alive=self.keep_alive)

    def ask(self, client: Any, text: str, *, on_text: TextSink | None = None, read_timeout: float | None = None,
            usage: UsagePolicy | None = None) -> GenerationReport:
        """Send `text`, stream the answer to `on_text`, keep both in the conversation.

        Ctrl-C (KeyboardInterrupt) or a failure after some text keeps the partial answer, marked, and
        re-raises; a failure before any text drops the question again so it can simply be retried."""
        usage = usage or UsagePolicy(command="chat")
        self.messages.append({"role": "user", "content": text})
        received: list[str] = []

        def take(piece: str) -> None:
            received.append(piece)
            if on_text:
                on_text(piece)

        try:
            report = run_generation(client, self.request(), on_text=take, read_timeout=read_timeout, usage=usage)
        except KeyboardInterrupt:
            self.messages.append({"role": "assistant", "content": "".join(received), "interrupted": True})
            raise
        except BaseException as exc:
            if received:
                message = exc.one_line() if isinstance(exc, SollamaError) else type(exc).__name__
                self.messages.append({"role": "assistant", "content": "".join(received), "interrupted": True,
                                      "error": message})
            else:
                self.messages.pop()
            raise
        self.messages.append({"role": "assistant", "content": report.text})
        self.last = report
        return report

    # -- slash commands ------------------------------------------------------------------------------------------

    def execute(self, cmd: Command, client: Any) -> Reply:
        """Apply a slash command; errors are raised as SollamaError for the terminal layer to show."""
        if cmd.kind == "invalid":
            raise UsageError(cmd.error or "invalid command")
        if cmd.kind == "help":
            return Reply("help", HELP)
        if cmd.kind == "bye":
            return Reply("exit")
        if cmd.kind == "clear":
            self.messages.clear()
            self.last = None
            return Reply("info", "cleared the conversation")
        if cmd.kind == "system":
            self.system = cmd.arg
            return Reply("info", "set the system message")
        if cmd.kind == "set":
            self.options.update(cmd.options)
            return Reply("info", "set " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in cmd.options.items()))
        if cmd.kind == "unset":
            return Reply("info", self._unset(cmd.arg))
        if cmd.kind == "verbose":
            self.verbose = cmd.arg == "on"
            return Reply("info", f"timings after each answer: {cmd.arg}")
        if cmd.kind == "model":
            from ollama_ops.services.models import show_model

            show_model(client, cmd.arg)  # ModelNotFound (with the installed names) if it is not there
            self.model = cmd.arg
            return Reply("info", f"now chatting with {cmd.arg}")
        if cmd.kind == "show":
            from ollama_ops.services.models import show_model

            view = ShowView(details=show_model(client, self.model), options=dict(self.options),
                            system=self.system, transcript=self.name, messages=len(self.messages))
            return Reply("show", data=view)
        if cmd.kind == "stats":
            if self.last is None:
                return Reply("info", "no finished answer yet")
            return Reply("stats", data=self.last)
        if cmd.kind == "save":
            return Reply("info", f"saved to {self.save_as(cmd.arg)}")
        if cmd.kind == "load":
            self.load(cmd.arg)
            return Reply("info", f"loaded '{self.name}': {len(self.messages)} messages with {self.model}")
        raise UsageError(f"not a command: {cmd.kind}")

    def _unset(self, key: str) -> str:
        if key == "system":
            self.system = None
            return "removed the system message"
        if key not in self.options:
            raise UsageError(f"option '{key}' is not set")
        del self.options[key]
        return f"unset {key}"

    # -- transcripts ---------------------------------------------------------------------------------------------

    def transcript(self) -> dict[str, Any]:
        return {
            "version": TRANSCRIPT_VERSION, "name": self.name, "model": self.model, "system": self.system,
            "options": self.options, "created_at": _iso(self.created), "updated_at": _iso(time.time()),
            "messages": self.messages,
        }

    def save(self) -> Path:
        """Write the transcript under the current name (the auto-save after every turn)."""
        chats_dir(create=True)
        path = transcript_path(self.name)
        write_private_json(path, self.transcript())
        return path

    def save_as(self, name: str) -> Path:
        """Save as `name` and keep saving there; the auto-named file of this session is then removed."""
        old = None if self.named else transcript_path(self.name)
        self.name, self.named = check_name(name), True
        path = self.save()
        if old is not None and old != path:
            old.unlink(missing_ok=True)
        return path

    def resume(self, name: str, *, model: str | None = None, options: dict[str, Any] | None = None,
               system: str | None = None) -> None:
        """`load` a transcript, then lay what this command line asks for over what it saved."""
        self.load(name)
        self.model = model or self.model
        self.options.update(options or {})
        if system is not None:
            self.system = system

    def load(self, name: str) -> None:
        """Continue a saved transcript: its messages, model, system message and options."""
        data = read_transcript(name)
        self.messages = [dict(m) for m in data["messages"]]
        self.model = str(data.get("model") or self.model)
        self.system = data.get("system") if isinstance(data.get("system"), str) else None
        self.options = dict(data.get("options") or {}) if isinstance(data.get("options"), dict) else {}
        self.name, self.named, self.last = name, True, None


def _iso(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
