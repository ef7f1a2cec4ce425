"""Health verdicts (pure): each `sollama doctor` check from its facts, the `status` state, and log/version parsing.

Every function takes plain facts (gathered by services/doctor.py and services/status/) and returns a verdict,
so the thresholds and the wording of the fixes are unit-tested without a machine to probe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollama_ops.core.units import format_bytes

PASS, WARN, FAIL = "pass", "warn", "fail"
GIB = 2**30
DISK_FAIL = 1 * GIB
DISK_WARN = 10 * GIB
RAM_WARN_AVAILABLE = 1 * GIB
SWAP_WARN_FRACTION = 0.5

_VERSION_RE = re.compile(r"version is\s+v?([0-9A-Za-z.+_-]+)")
# Ollama's log mixes slog lines (`level=WARN msg=... error=...`), Gin access lines (`[GIN] ... | 500 | ...`), Go's
# log (`Error: ...`), panics and the runner's own output. A line with a level is an error only at ERROR/FATAL (a
# WARN about a failed cloud look-up is not); an access line only with a 5xx status; anything else by its words.
_LEVEL_RE = re.compile(r"\blevel=([A-Za-z]+)")
_GIN_RE = re.compile(r"\[GIN\][^|]*\|\s*(\d{3})\s*\|")
_ERROR_WORDS_RE = re.compile(r"\b(error|panic|fatal|failed)\b|\berr=", re.IGNORECASE)


@dataclass
class Check:
    """One doctor check: `status` is pass | warn | fail; `fix` says what to do (None when nothing)."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def parse_version_output(text: str) -> str | None:
    """The version in `ollama --version` output: "ollama version is X" or "Warning: client version is X"."""
    match = _VERSION_RE.search(text or "")
    return match.group(1) if match else None


def check_binary(path: str | None, version: str | None, error: str | None = None) -> Check:
    if path is None:
        return Check("binary", FAIL, "no ollama binary found (config ollama.binary, SOLLAMA_OLLAMA_BIN, PATH, "
                                     "tools cache)", "install it: `bash scripts/install-ollama.sh`, or set "
                                                     "SOLLAMA_OLLAMA_BIN=/path/to/ollama")
    if error is not None:
        return Check("binary", FAIL, f"{path} does not run: {error}", "reinstall it or point ollama.binary at a "
                                                                      "working one")
    if version is None:
        return Check("binary", WARN, f"{path} runs but its version is unknown", "check `ollama --version`")
    return Check("binary", PASS, f"{path} (version {version})")


def check_port(port: int, *, local: bool, holder: str | None, holder_is_ollama: bool,
               answers_as_ollama: bool) -> Check:
    """The configured port: free, held by Ollama, or by something else (named)."""
    if not local:
        return Check("port", PASS, f"remote address: port {port} is not checked from here")
    if holder is None and not answers_as_ollama:
        return Check("port", PASS, f"port {port} is free")
    if holder_is_ollama or answers_as_ollama:
        who = f" ({holder})" if holder else ""
        return Check("port", PASS, f"port {port} is held by Ollama{who}")
    return Check("port", FAIL, f"port {port} is held by {holder}, not Ollama",
                 "stop that process or choose another port with --host 127.0.0.1:PORT")


def check_home(path: str, writable: bool) -> Check:
    if writable:
        return Check("home", PASS, f"{path} is writable (Ollama keeps its key in ~/.ollama)")
    # `sollama start` works around it (a HOME under the state dir), but `ollama serve` run any other way fails.
    return Check("home", WARN, f"{path} is not writable; `ollama serve` cannot create ~/.ollama/id_ed25519",
                 "start it with `sollama start` (which gives it a HOME in the state dir) or set HOME to a "
                 "writable directory")


def check_sollama_dirs(dirs: list[tuple[str, str, str | None]]) -> Check:
    """sollama's own directories: (what, path, why it is not writable or None). Each one must be writable:
    the pid file, lock, logs and memory plan live in the state dir, the history and transcripts in the data dir."""
    bad = [(what, path, why) for what, path, why in dirs if why]
    if not bad:
        return Check("sollama dirs", PASS, "writable: " + ", ".join(f"{what} {path}" for what, path, _ in dirs))
    return Check("sollama dirs", FAIL, "; ".join(f"{what} {path} is not writable: {why}" for what, path, why in bad),
                 "make it writable (chattr -i, chmod, remount), or set SOLLAMA_HOME to a writable directory")


def check_models_dir(path: str, writable: bool, free: int | None) -> Check:
    if not writable:
        return Check("models dir", FAIL, f"{path} is not writable",
                     "fix its permissions or set server.models_dir (OLLAMA_MODELS) elsewhere")
    if free is None:
        return Check("models dir", WARN, f"{path}: free space unknown")
    if free < DISK_FAIL:
        return Check("models dir", FAIL, f"{path}: only {format_bytes(free)} free",
                     "free disk space or move server.models_dir to a larger disk")
    if free < DISK_WARN:
        return Check("models dir", WARN, f"{path}: {format_bytes(free)} free; a 7B model needs about 5 GiB",
                     "free disk space or move server.models_dir to a larger disk")
    return Check("models dir", PASS, f"{path} is writable, {format_bytes(free)} free")


def check_memory(total: int, available: int, swap_total: int, swap_used: int, budget: int | None = None) -> Check:
    detail = f"RAM {format_bytes(available)} available of {format_bytes(total)}; swap " + (
        f"{format_bytes(swap_used)} used of {format_bytes(swap_total)}" if swap_total else "none")
    if budget is not None:
        detail += f"; budget {format_bytes(budget)}"
    if budget is not None and budget <= 0:
        return Check("memory", FAIL, detail, "lower memory.reserve: it leaves nothing for models")
    if available < RAM_WARN_AVAILABLE:
        return Check("memory", WARN, detail, "stop other work or unload models (`sollama models unload --all`)")
    if swap_total and swap_used > SWAP_WARN_FRACTION * swap_total:
        return Check("memory", WARN, detail, "the machine is swapping: load fewer or smaller models")
    return Check("memory", PASS, detail)


def check_gpu(gpus: list[tuple[str, int, int]], smi_found: bool) -> Check:
    """`gpus` as (name, total, used) bytes."""
    if not gpus:
        if smi_found:
            return Check("gpu", WARN, "nvidia-smi is present but reports no GPU", "check the NVIDIA driver")
        return Check("gpu", PASS, "no NVIDIA GPU (nvidia-smi not found): models run on the CPU")
    names = "; ".join(f"{name} {format_bytes(used)} used of {format_bytes(total)}" for name, total, used in gpus)
    return Check("gpu", PASS, names)


def check_config(error: str | None, config_file: str | None) -> Check:
    if error is not None:
        return Check("config", FAIL, error, "fix the file (`sollama config validate` shows the same message)")
    where = config_file or "no config file, built-in defaults"
    return Check("config", PASS, f"valid ({where})")


def check_pidfile(present: bool, verified_pid: int | None, why_stale: str | None) -> Check:
    if not present:
        return Check("pid file", PASS, "none (no daemon started by sollama)")
    if verified_pid is not None:
        return Check("pid file", PASS, f"matches the running daemon (pid {verified_pid})")
    return Check("pid file", WARN, f"stale: {why_stale or 'the recorded process is gone'}",
                 "remove it with `sollama stop` (or `sollama cleanup`)")


def check_gateway_record(present: bool, verified_pid: int | None, address: str | None, why_stale: str | None,
                         answer: str | None = None) -> Check:
    """The managed gateway's pid record (`start --gateway`): none (fine: no gateway is needed), a verified running
    gateway (with `answer`: "ready", "up" = its upstream is not ready, else it does not answer), or stale."""
    if not present:
        return Check("gateway", PASS, "none (no gateway started by sollama)")
    if verified_pid is None:
        return Check("gateway", WARN, f"stale pid record: {why_stale or 'the recorded process is gone'}",
                     "remove it with `sollama stop` (or `sollama cleanup`); nothing is signalled")
    where = f"started by sollama (pid {verified_pid}, verified) at {address}"
    if answer == "ready":
        return Check("gateway", PASS, f"{where}, ready")
    if answer == "up":
        return Check("gateway", WARN, f"{where}: answers, but its upstream is not ready",
                     "see `sollama status` and `sollama logs`")
    return Check("gateway", WARN, f"{where}, but it does not answer there",
                 "see `sollama logs --gateway` and its process log; `sollama restart` restarts it")


def check_exposure(host: str, loopback: bool, listener_address: str | None = None) -> Check:
    """Warn when Ollama is (or would be) reachable beyond loopback: it has no authentication of its own."""
    open_listener = listener_address not in (None, "") and not _is_loopback_ip(listener_address or "")
    if loopback and not open_listener:
        return Check("exposure", PASS, f"{host} listens on loopback only")
    where = listener_address if open_listener else host
    return Check("exposure", WARN, f"{where} is reachable beyond loopback and Ollama has no authentication",
                 "bind 127.0.0.1 (server.host) and put an authenticating gateway in front for remote users")


def _is_loopback_ip(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return address == "localhost"


def overall(checks: list[Check]) -> str:
    """fail if any check failed, else warn if any warned, else pass."""
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def status_state(reachable: bool, deep_ok: bool | None) -> str:
    """healthy | degraded (answers, but the deep probe failed) | unreachable."""
    if not reachable:
        return "unreachable"
    return "degraded" if deep_ok is False else "healthy"


def is_error_line(line: str) -> bool:
    """Whether a daemon log line reports an error (see `_LEVEL_RE` and friends for what counts)."""
    level = _LEVEL_RE.search(line)
    if level is not None:
        return level.group(1).upper() in ("ERROR", "FATAL")
    access = _GIN_RE.search(line)
    if access is not None:
        return access.group(1).startswith("5")
    return _ERROR_WORDS_RE.search(line) is not None


def error_lines(lines: list[str], limit: int = 5) -> list[str]:
    """The last `limit` lines that report an error (`is_error_line`)."""
    hits = [line.rstrip() for line in lines if is_error_line(line)]
    return hits[-limit:] if limit > 0 else []
