"""One generation, start to finish: stream a request, hand each piece of text to the caller as it arrives,
and record one usage row whatever happens.

`run_generation` never prints. The caller passes `on_text` (the CLI writes and flushes each piece to stdout)
and gets a `GenerationReport` back; on failure the original error propagates unchanged (the usage row is
written first, and a failing store only produces a warning through `on_warning`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.core.ndjson import FinalChunk, Timings
from ollama_ops.core.options import parse_number, parse_options
from ollama_ops.errors import ModelNotFound, RequestTimeout, UsageError

TextSink = Callable[[str], None]
Warn = Callable[[str], None]


@dataclass
class GenerationReport:
    """What one generation produced and what the server measured (timings in seconds, counts in tokens)."""

    model: str
    text: str
    done_reason: str
    timings: Timings
    ttft_s: float | None  # request sent → first non-empty text, measured here
    wall_s: float  # request sent → end of the stream, measured here
    outcome: str = "ok"  # ok | error | timeout | interrupted
    error: str | None = None


@dataclass
class UsagePolicy:
    """How a generation is recorded: which command asked, whether the prompt text is kept, and where
    rows go (`record` defaults to the history Store; tests and `--no-history` style callers may replace it)."""

    command: str = "generate"
    log_prompt: bool = False
    record: Callable[[Any], None] | None = None
    on_warning: Warn | None = None
    prompt_text: str | None = field(default=None, repr=False)


def _record_in_store(row: Any) -> None:
    from ollama_ops.edges.store import Store

    with Store() as store:
        store.record_usage(row)


@dataclass
class RequestKnobs:
    """What generate and chat send with every request, the config's defaults applied to their flags."""

    options: dict[str, Any]
    format: str | dict[str, Any] | None
    keep_alive: str | int | float | None
    wait: float  # the longest wait for the next chunk, seconds


def request_knobs(settings: Any, *, option: list[str] | None, temperature: float | None, seed: int | None,
                  num_ctx: int | None, max_tokens: int | None, format: str | None, keep_alive: str | None,
                  timeout: float | None) -> RequestKnobs:
    """The flags shared by `generate` and `chat`, checked and with `generate.*` settings as their defaults."""
    return RequestKnobs(
        options=build_options(option, temperature=temperature, seed=seed, num_ctx=num_ctx, max_tokens=max_tokens),
        format=resolve_format(format),
        keep_alive=parse_keep_alive(keep_alive if keep_alive is not None else settings.generate.keep_alive),
        wait=timeout if timeout is not None else settings.generate.timeout)


def build_options(pairs: list[str] | None = None, *, temperature: float | None = None, seed: int | None = None,
                  num_ctx: int | None = None, max_tokens: int | None = None) -> dict[str, Any]:
    """`--option k=v` pairs (typed by Ollama's schema) with the shortcut flags laid over them."""
    options = parse_options(pairs)
    shortcuts = {"temperature": temperature, "seed": seed, "num_ctx": num_ctx, "num_predict": max_tokens}
    for key, value in shortcuts.items():
        if value is not None:
            options[key] = float(value) if key == "temperature" else int(value)
    return options


def resolve_format(value: str | None) -> str | dict[str, Any] | None:
    """`--format json` → "json"; `--format schema.json` → the JSON schema object read from that file."""
    if value is None or value == "":
        return None
    if value == "json":
        return "json"
    from ollama_ops.edges.textfile import read_text_file

    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"--format must be 'json' or a JSON schema file; no such file: {path}")
    text = read_text_file(path, what="--format schema", error=UsageError)
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"cannot read the JSON schema {path}: {exc}") from exc
    if not isinstance(schema, dict):
        raise UsageError(f"the JSON schema {path} must be an object, got {type(schema).__name__}")
    return schema


def parse_keep_alive(value: str | int | float | None) -> str | int | float | None:
    """Ollama takes a number of seconds or a Go duration string ("10m"); a numeric string becomes a number,
    because the server rejects "300" as a duration without a unit."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    number = parse_number(text)
    if number is not None:
        return number
    if not text:
        raise UsageError("--keep-alive needs a value such as 300, 10m or -1")
    return text


def read_prompt(prompt: str | None, *, file: Path | None, stdin_text: Callable[[], str],
                stdin_is_tty: bool) -> str:
    """The prompt from the argument, `-` (stdin) or `--file` (argument first, then the file, blank line apart).

    With neither an argument nor a file, piped stdin is read; a terminal on stdin is a usage error (no prompt).
    A prompt that is empty or only whitespace is a usage error too: there is nothing to answer, and Ollama reads
    an empty prompt as "load the model" (or, with keep_alive 0, "unload it"). The text is sent as given."""
    from ollama_ops.edges.textfile import read_text_file

    parts: list[str] = []
    if prompt == "-" or (prompt is None and file is None and not stdin_is_tty):
        parts.append(stdin_text())
    elif prompt is not None:
        parts.append(prompt)
    if file is not None:
        parts.append(read_text_file(file, what="--file", error=UsageError))
    if not parts:
        raise UsageError("no prompt: pass PROMPT, '-' to read stdin, or --file PATH")
    if "\0" in parts[0]:
        raise UsageError("the prompt has a NUL character; pass text")
    text = "\n\n".join(parts)
    if not text.strip():
        raise UsageError("the prompt is empty", hint="pass some text: an empty prompt only loads the model")
    return text


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, RequestTimeout):
        return "timeout"
    return "error"


def _message_of(exc: BaseException) -> str:
    one_line = getattr(exc, "one_line", None)
    if callable(one_line):
        return str(one_line())
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def usage_row(report: GenerationReport, *, started: float, command: str, prompt: str | None) -> Any:
    """The history row for one generation. Without a final chunk the server timings are unknown (0); then
    `total_s` is the wall time measured here, so stalls and interrupts still show how long they held."""
    from ollama_ops.edges.store import UsageRow

    t = report.timings
    return UsageRow(time=started, command=command, model=report.model, prompt_tokens=t.prompt_eval_count,
                    eval_tokens=t.eval_count, total_s=t.total or report.wall_s, load_s=t.load,
                    prompt_eval_s=t.prompt_eval, eval_s=t.eval, ttft_s=report.ttft_s, outcome=report.outcome,
                    error=report.error, prompt=prompt)


def _record(report: GenerationReport, started: float, usage: UsagePolicy, prompt: str) -> None:
    """Write the usage row; any failure becomes a warning so it never hides the generation's own result."""
    try:
        row = usage_row(report, started=started, command=usage.command,
                        prompt=prompt if usage.log_prompt else None)
        (usage.record or _record_in_store)(row)
    except Exception as exc:  # noqa: BLE001 - the history is best effort; the answer matters more
        if usage.on_warning:
            usage.on_warning(f"usage not recorded: {_message_of(exc)}")


def _prompt_of(req: GenerateRequest) -> str:
    if req.messages is None:
        return req.prompt
    users = [str(m.get("content") or "") for m in req.messages if m.get("role") == "user"]
    return users[-1] if users else ""


def run_generation(client: Any, req: GenerateRequest, *, on_text: TextSink | None = None,
                   read_timeout: float | None = None, usage: UsagePolicy | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> GenerationReport:
    """Run `req` (streamed unless `req.stream` is False), calling `on_text` with every non-empty piece.

    Raises what the client raises (ModelNotFound re-raised with the installed names, RequestTimeout when the
    stream stalls longer than `read_timeout`, ServerError on an error line or a broken stream) and
    KeyboardInterrupt; in every case one usage row is recorded first (outcome ok/error/timeout/interrupted)."""
    usage = usage or UsagePolicy()
    started_epoch = time.time()
    t0 = clock()
    parts: list[str] = []
    report = GenerationReport(model=req.model, text="", done_reason="", timings=Timings(), ttft_s=None, wall_s=0.0)

    def take(text: str) -> None:
        if not text:
            return
        if report.ttft_s is None:
            report.ttft_s = clock() - t0
        parts.append(text)
        if on_text:
            on_text(text)

    try:
        if req.stream:
            with contextlib.closing(client.stream(req, read_timeout=read_timeout)) as events:
                for event in events:
                    take(event.text)
                    if isinstance(event, FinalChunk):
                        report.done_reason, report.timings = event.done_reason, event.timings
        else:
            result = client.generate(req, read_timeout=read_timeout)
            take(result.text)
            report.done_reason, report.timings = result.done_reason, result.timings
    except ModelNotFound as exc:
        from ollama_ops.services.models import not_found

        report.outcome, report.error = "error", exc.one_line()
        raise not_found(client, exc) from None
    except BaseException as exc:
        report.outcome, report.error = _outcome_of(exc), _message_of(exc)
        raise
    finally:
        report.text = "".join(parts)
        report.wall_s = clock() - t0
        _record(report, started_epoch, usage, _prompt_of(req))
    return report
