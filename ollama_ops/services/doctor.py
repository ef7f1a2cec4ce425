"""`sollama doctor`: gather the facts of this machine and judge each with `core.health` (pass / warn / fail)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.core import health
from ollama_ops.core.health import Check
from ollama_ops.core.hosts import parse_host
from ollama_ops.errors import ConfigError, ProcessError, SollamaError

VERSION_TIMEOUT = 10.0


@dataclass
class DoctorReport:
    status: str  # pass | warn | fail: the worst of the checks
    checks: list[Check]
    passed: int
    warned: int
    failed: int


def find_binary(settings: Any) -> str | None:
    """The binary `sollama start` would run (same search order), or None when there is none."""
    from ollama_ops.services.launch import find_binary as launch_binary

    try:
        return launch_binary(settings)
    except ProcessError:
        return None


def binary_version(binary: str, host_url: str, *, timeout: float | None = None) -> tuple[str | None, str | None]:
    """(version, error) from `<binary> --version`, asked against our address so it does not hang elsewhere."""
    if not Path(binary).is_file():
        return None, "no such file"
    env = {**os.environ, "OLLAMA_HOST": host_url}
    timeout = VERSION_TIMEOUT if timeout is None else timeout
    try:
        # Its own process group, so that on timeout everything it started goes too (a child left holding the
        # pipes would keep us waiting for their end forever).
        proc = subprocess.Popen([binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, f"`{binary} --version` did not answer within {timeout:g}s"
    version = health.parse_version_output(stdout + "\n" + stderr)
    if version is None and proc.returncode != 0:
        return None, " ".join((stderr or stdout).split())[:160] or f"exit status {proc.returncode}"
    return version, None


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group the probe leads (its pgid is its pid, from start_new_session; not reaped yet, so
    the id cannot have been reused), then reap it."""
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)


def models_dir(settings: Any) -> Path:
    """Where the daemon keeps models: server.models_dir, else OLLAMA_MODELS, else ~/.ollama/models."""
    configured = settings.server.models_dir or os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def _load_settings(config_path: str | None, host: str | None) -> tuple[Any, str | None]:
    """The settings, or the built-in defaults plus the error when the config is invalid (doctor goes on)."""
    from ollama_ops.config import default_yaml_path, load_settings

    try:
        return load_settings(config_path, flags={"server.host": host}), None
    except ConfigError as exc:
        error = exc.one_line()
    try:
        return load_settings(default_yaml_path(), environ={}, flags={"server.host": host}), error
    except ConfigError:  # a bad --host flag: fall back to the plain defaults
        return load_settings(default_yaml_path(), environ={}), error


def _answers_as_ollama(base_url: str) -> bool:
    import httpx

    try:
        response = httpx.get(base_url + "/", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and "ollama" in response.text.lower()


def _pidfile_check() -> Check:
    try:
        from ollama_ops.edges import process
    except ModuleNotFoundError:  # the lifecycle edge is not installed: nothing recorded to check
        return health.check_pidfile(False, None, None)
    record = process.read_pidfile()
    if record is None:
        return health.check_pidfile(False, None, None)
    proc = process.verify(record)
    return health.check_pidfile(True, proc.pid if proc else None, None if proc else process.why_stale(record))


def _gateway_check() -> Check:
    """The managed gateway's record: absent, running and verified (and whether it answers), or stale."""
    from ollama_ops.edges import process
    from ollama_ops.services import gateway_lifecycle as gl

    record, proc = gl.gateway_record()
    if record is None:
        return health.check_gateway_record(False, None, None, None)
    if proc is None:
        return health.check_gateway_record(True, None, record.base_url, process.why_stale(record))
    answer = gl.probe(record.base_url) if record.base_url else None
    return health.check_gateway_record(True, proc.pid, record.base_url, None, answer)


def run_doctor(config_path: str | None, host: str | None) -> DoctorReport:
    """Run every check; never raises for what it finds (a bad config is a failed check, not exit 3)."""
    from ollama_ops.edges import system

    settings, config_error = _load_settings(config_path, host)
    address = parse_host(settings.server.host)
    checks: list[Check] = []

    listener = system.listener_on(address.port) if address.is_local else None
    holder = None
    if listener is not None:
        holder = f"{listener.name} pid {listener.pid}" if listener.pid else listener.name
    is_ollama = listener is not None and "ollama" in (listener.name + " ".join(listener.cmdline[:1])).lower()
    answers = _answers_as_ollama(address.base_url)

    binary = find_binary(settings)
    # `ollama --version` also asks the server; point it at one that answers, or at a port that refuses at once,
    # so that it never waits on some other program's listener.
    ask = address.base_url if answers else "http://127.0.0.1:1"
    version, error = binary_version(binary, ask) if binary else (None, None)
    checks.append(health.check_binary(binary, version, error))
    checks.append(health.check_port(address.port, local=address.is_local, holder=holder, holder_is_ollama=is_ollama,
                                    answers_as_ollama=answers))

    home = Path.home()
    checks.append(health.check_home(str(home), system.is_writable_dir(home / ".ollama")))

    models = models_dir(settings)
    writable = system.is_writable_dir(models)
    try:
        free = system.disk_free(models)
    except OSError:
        free = None
    checks.append(health.check_models_dir(str(models), writable, free))

    mem = system.memory_facts()
    gpus = system.gpu_facts()
    try:
        from ollama_ops.core.memory_plan import compute_budget

        budget = compute_budget(mem.total, settings.memory.reserve, sum(g.total for g in gpus), len(gpus)).total
    except (ValueError, SollamaError):
        budget = None
    checks.append(health.check_memory(mem.total, mem.available, mem.swap_total, mem.swap_used, budget))
    checks.append(health.check_gpu([(g.name, g.total, g.used) for g in gpus], shutil.which("nvidia-smi") is not None))
    config_file = str(settings.config_file) if settings.config_file else None
    checks.append(health.check_config(config_error, config_file))
    checks.append(_pidfile_check())
    checks.append(_gateway_check())
    checks.append(health.check_sollama_dirs([(what, str(path), system.unwritable_reason(path)) for what, path in
                                             (("state dir", paths.state_dir()), ("data dir", paths.data_dir()))]))
    ours = listener is not None and (is_ollama or answers)
    checks.append(health.check_exposure(settings.server.host, address.is_loopback,
                                        listener.address if ours and listener else None))
    counts = {s: sum(1 for c in checks if c.status == s) for s in (health.PASS, health.WARN, health.FAIL)}
    return DoctorReport(status=health.overall(checks), checks=checks, passed=counts[health.PASS],
                        warned=counts[health.WARN], failed=counts[health.FAIL])
