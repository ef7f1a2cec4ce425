"""The one error tree. Every failure a user can meet is a SollamaError with an exit code.

The CLI boundary (`ollama_ops.cli.app.SollamaGroup`) is the only place that turns these into a message and an
exit status; services raise, they never exit.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    UNREACHABLE = 4
    TIMEOUT = 5
    REGRESSION = 6
    UNHEALTHY = 7
    INTERRUPTED = 130


class SollamaError(Exception):
    """Base of every error sollama reports. `hint` is an optional second sentence telling what to do."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class UsageError(SollamaError):
    exit_code = ExitCode.USAGE


class ConfigError(SollamaError):
    exit_code = ExitCode.CONFIG


class LocalLimit(SollamaError):
    """A limit of this machine, not the server, stopped the work (e.g. out of file descriptors): exit 1, never
    "server unreachable"."""


class ServerUnreachable(SollamaError):
    exit_code = ExitCode.UNREACHABLE


class RequestTimeout(SollamaError):
    exit_code = ExitCode.TIMEOUT


class RegressionDetected(SollamaError):
    exit_code = ExitCode.REGRESSION


class Unhealthy(SollamaError):
    exit_code = ExitCode.UNHEALTHY


class Interrupted(SollamaError):
    exit_code = ExitCode.INTERRUPTED


class RunFailed(SollamaError):
    """A bench run that fails as a CI step: requests failed beyond `--max-failures`, none succeeded, or the server
    stopped answering mid-run (exit 1, as `generate` when the daemon dies mid-stream)."""


class GateUndecided(SollamaError):
    """`report --compare --fail-on-regression` cannot decide: a side has no successful request, or a gated metric
    has too few samples (exit 1; a regression is exit 6)."""


class OllamaError(SollamaError):
    """An error answered by the server itself (HTTP status or an `{"error": ...}` line)."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ModelNotFound(OllamaError):
    def __init__(self, model: str, *, installed: list[str] | None = None, server_message: str = "") -> None:
        self.model = model
        self.installed = installed
        self.server_message = server_message
        if installed is None:
            super().__init__(f"model '{model}' not found", status=404, hint="see `sollama models list`")
        else:
            listing = ", ".join(installed) if installed else "none"
            super().__init__(f"model '{model}' not found; installed: {listing}", status=404)


class ServerBusy(OllamaError):
    pass


class BadRequest(OllamaError):
    pass


class ServerError(OllamaError):
    pass


class MalformedResponse(OllamaError):
    pass


class ProcessError(SollamaError):
    """Starting, stopping or verifying the local daemon went wrong."""


class QueueFull(SollamaError):
    """A client's own request queue is full (`max_queue` callers already wait for one of `max_concurrency`
    slots), or a caller waited past `queue_timeout`. Nothing was sent."""
