"""What `sollama start` will run: the binary, the environment for `ollama serve`, and the optional cgroup cap.

Binary discovery order: `--binary`, `ollama.binary` (config or SOLLAMA_OLLAMA_BIN), `ollama` on PATH, then the
copy `scripts/install-ollama.sh` builds into `paths.tools_dir()/bin/ollama`.

Environment order (later wins): the inherited environment; OLLAMA_HOST from server.host; OLLAMA_MODELS and the
other knobs the config pins; the memory plan's recommendations for the knobs the config leaves open;
server.extra_env; `--env KEY=VAL`. HOME must be writable (Ollama creates ~/.ollama/id_ed25519).
"""

from __future__ import annotations

import getpass
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.core.hosts import HostAddress, parse_host
from ollama_ops.edges import process as pf
from ollama_ops.errors import ProcessError, UsageError

# config key (server.*) → the variable `ollama serve` reads
PINNED_ENV = {
    "keep_alive": "OLLAMA_KEEP_ALIVE",
    "num_parallel": "OLLAMA_NUM_PARALLEL",
    "max_loaded_models": "OLLAMA_MAX_LOADED_MODELS",
    "context_length": "OLLAMA_CONTEXT_LENGTH",
    "kv_cache_type": "OLLAMA_KV_CACHE_TYPE",
    "flash_attention": "OLLAMA_FLASH_ATTENTION",
    "max_queue": "OLLAMA_MAX_QUEUE",
    "no_cloud": "OLLAMA_NO_CLOUD",
}
NO_CGROUP = "no usable cgroup here; starting without a hard memory cap"


@dataclass
class LaunchPlan:
    """The command and environment for `ollama serve`; `env` holds only what sollama sets (shown by
    --dry-run), `full_env` the whole environment the process gets."""

    binary: str
    address: HostAddress
    command: list[str]
    serve_cmdline: list[str]
    env: dict[str, str]
    env_sources: dict[str, str]
    log: str
    memory_budget: int | None = None
    memory_cap: int | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    full_env: dict[str, str] = field(default_factory=dict, repr=False, metadata={"json_skip": True})


def find_binary(settings: Any, explicit: str | None = None) -> str:
    """The `ollama` executable to run, as an absolute path."""
    configured = explicit or settings.ollama.binary
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        found = shutil.which(str(configured))
        if found:
            return str(Path(found).resolve())
        origin = "--binary" if explicit else settings.sources.get("ollama.binary", "config")
        raise ProcessError(f"ollama binary {configured} (from {origin}) is not an executable file",
                           hint="fix the path, or build one with scripts/install-ollama.sh")
    found = shutil.which("ollama")
    if found:
        return str(Path(found).resolve())
    built = paths.tools_dir() / "bin" / "ollama"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built.resolve())
    raise ProcessError("no ollama binary found (looked at --binary, SOLLAMA_OLLAMA_BIN / ollama.binary, PATH, "
                       f"{built})", hint="build one with scripts/install-ollama.sh, or pass --binary PATH")


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """`--env KEY=VAL` flags into a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key):
            raise UsageError(f"--env expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def memory_start_env(settings: Any) -> dict[str, str]:
    """The memory plan's recommendations (services.memory.start_env), or nothing where it is unavailable."""
    try:
        from ollama_ops.services.memory import start_env
    except ImportError:
        return {}
    return {str(k): str(v) for k, v in start_env(settings).items()}


def memory_budget(settings: Any) -> int | None:
    """Bytes the daemon may use: services.memory.budget, else total RAM minus memory.reserve."""
    try:
        from ollama_ops.services.memory import budget
    except ImportError:
        pass
    else:
        return int(budget(settings))
    try:
        import psutil

        from ollama_ops.core.units import parse_reserve

        total = psutil.virtual_memory().total
        kind, amount = parse_reserve(settings.memory.reserve)
        reserve = total * amount / 100 if kind == "percent" else amount
        return max(0, int(total - reserve))
    except (ValueError, OSError):
        return None


def _writable_dir(path: str | None) -> bool:
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)  # type: ignore[arg-type]


def build_env(settings: Any, extra: dict[str, str], base: dict[str, str] | None = None,
              ) -> tuple[dict[str, str], dict[str, str], dict[str, str], list[str]]:
    """(full environment, the variables sollama sets, where each came from, notes)."""
    full = dict(os.environ if base is None else base)
    env: dict[str, str] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []

    def put(key: str, value: str, source: str) -> None:
        env[key] = value
        sources[key] = source

    server = settings.server
    put("OLLAMA_HOST", parse_host(server.host).bind, f"server.host ({settings.sources.get('server.host', '')})")
    if server.models_dir:
        put("OLLAMA_MODELS", str(Path(server.models_dir).expanduser()), "server.models_dir")
    for key, var in PINNED_ENV.items():
        value = getattr(server, key)
        if value is not None:
            put(var, _env_value(value), f"server.{key}")
    for var, value in memory_start_env(settings).items():
        if var not in env:
            put(var, value, "memory plan")
    for var, value in (server.extra_env or {}).items():
        put(var, value, "server.extra_env")
    for var, value in extra.items():
        put(var, value, "--env")
    home = env.get("HOME", full.get("HOME"))
    if not _writable_dir(home):
        fallback = paths.state_dir(create=True) / "ollama-home"
        fallback.mkdir(parents=True, exist_ok=True, mode=0o700)
        put("HOME", str(fallback), "writable HOME for ~/.ollama")
        notes.append(f"HOME ({home or 'unset'}) is not writable; using {fallback} as the daemon's HOME")
    full.update(env)
    return full, env, sources, notes


def cgroup_wrapper(cap: int, *, run: Any = subprocess.run) -> list[str] | None:
    """`systemd-run --scope -p MemoryMax=<cap>` where systemd can give us a scope, else None."""
    exe = shutil.which("systemd-run")
    ctl = shutil.which("systemctl")
    if not exe or not ctl:
        return None
    user = ["--user"] if os.geteuid() != 0 else []
    try:
        state = run([ctl, *user, "is-system-running"], capture_output=True, text=True, timeout=3).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if state not in ("running", "degraded"):
        return None
    return [exe, *user, "--scope", "--quiet", "--collect", "-p", f"MemoryMax={cap}"]


def plan_launch(settings: Any, *, binary: str | None = None, env_pairs: list[str] | None = None,
                enforce: bool | None = None) -> LaunchPlan:
    """Everything `start` needs to run, found and checked, with no side effect beyond a HOME fallback dir."""
    extra = parse_env_pairs(env_pairs or [])
    exe = find_binary(settings, binary)
    address = parse_host(settings.server.host)
    full, env, sources, notes = build_env(settings, extra)
    serve = [exe, "serve"]
    command = list(serve)
    budget = memory_budget(settings)
    cap = None
    warnings = []
    if settings.memory.enforce if enforce is None else enforce:
        wrapper = cgroup_wrapper(budget) if budget else None
        if wrapper is None:
            warnings.append(NO_CGROUP)
        else:
            command = wrapper + serve
            cap = budget
    return LaunchPlan(binary=exe, address=address, command=command, serve_cmdline=serve, env=env,
                      env_sources=sources, log=str(pf.log_path()), memory_budget=budget, memory_cap=cap,
                      notes=notes, warnings=warnings, full_env=full)


def _unit_safe(what: str, value: str) -> str:
    """`value` without control characters (a newline would end the unit line: refused, not escaped)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{what} contains a control character (newline, tab, escape...): {value!r:.80}",
                         hint="a systemd unit line cannot carry it; use a path or value without one")
    return value


def _systemd_quoted(text: str, *, exec_line: bool = False) -> str:
    """`text` as one double-quoted systemd word: `%` doubled (specifiers), `\\` and `"` backslash-escaped (C
    unescaping of quoted words), and in ExecStart `$` doubled (variable expansion)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    return f'"{text}"'


def _plain(arg: str) -> bool:
    """An ExecStart word that needs no quoting."""
    return arg != "" and all(c.isalnum() or c in "-_./=:+," for c in arg)


def service_unit(*, user: bool, config_path: str | None = None, watch: bool = False, gateway: bool = False,
                 workers: int | None = None, drain_timeout: float | None = None) -> str:
    """A systemd unit that runs `sollama start --foreground` (with `watch`: `sollama watch`, the watchdog, after
    the daemon's unit `sollama.service`; its exit 7 on giving up is not restarted by systemd; with `gateway`:
    `sollama serve [--workers N]`, the API gateway, after `sollama.service`, stopped by SIGTERM with its drain;
    KillMode=mixed, so the SIGTERM reaches only the supervisor, which forwards it to each worker once; systemd
    waits `drain_timeout` (gateway.drain_timeout) plus 15 s before it kills, at least 30 s). Paths and
    Environment values are quoted and escaped for systemd (spaces, `%`, `$`, quotes, backslashes); a control
    character is a usage error."""
    exe = shutil.which("sollama") or str(Path(sys.executable).with_name("sollama"))
    env_lines = []
    for var in ("SOLLAMA_HOME", "SOLLAMA_CONFIG", "SOLLAMA_OLLAMA_BIN", "SOLLAMA_TOOLS"):
        if os.environ.get(var):
            value = _unit_safe(var, os.environ[var])
            env_lines.append(f"Environment={_systemd_quoted(f'{var}={value}')}")
    argv = [_unit_safe("the sollama path", exe)]
    if config_path:
        argv += ["--config", _unit_safe("--config", str(Path(config_path).expanduser().resolve()))]
    argv += ["watch"] if watch else ["serve"] if gateway else ["start", "--foreground"]
    if gateway and workers is not None:
        argv += ["--workers", str(workers)]
    exec_start = " ".join(a if _plain(a) else _systemd_quoted(a, exec_line=True) for a in argv)
    stop_s = 30
    if gateway and drain_timeout is not None:  # the drain must end before systemd's SIGKILL does it
        stop_s = max(stop_s, math.ceil(drain_timeout) + 15)
    service = [
        "[Unit]", "Description=Ollama daemon managed by sollama", "After=network-online.target",
        "Wants=network-online.target", "", "[Service]", "Type=simple", f"ExecStart={exec_start}",
        *env_lines, "Restart=on-failure", "RestartSec=5", "KillSignal=SIGTERM", f"TimeoutStopSec={stop_s}",
    ]
    if watch:
        service[1:3] = ["Description=sollama watchdog of the Ollama daemon", "After=network-online.target "
                        "sollama.service"]
        service.insert(service.index(f"TimeoutStopSec={stop_s}"), "RestartPreventExitStatus=7")
    elif gateway:
        service[1:3] = ["Description=sollama API gateway (sollama serve) in front of Ollama",
                        "After=network-online.target sollama.service"]
        service.insert(service.index(f"TimeoutStopSec={stop_s}"), "RestartPreventExitStatus=3")  # config invalid
        service.insert(service.index("KillSignal=SIGTERM"), "KillMode=mixed")
    if not user and os.geteuid() != 0:
        service.append(f"User={_unit_safe('the user name', getpass.getuser())}")
    service += ["", "[Install]", f"WantedBy={'default.target' if user else 'multi-user.target'}", ""]
    return "\n".join(service)

