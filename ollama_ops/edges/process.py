"""The local daemon as an operating-system process: pid file, file lock, spawn, verify, stop (psutil).

The pid file (`state_dir/server.json`) is the contract other commands read (status, doctor, cleanup):

    {"pid": int, "create_time": float, "cmdline": [...], "host": "127.0.0.1:11434", "base_url": "http://...",
     "binary": "...", "started_at": ISO 8601, "log": ".../logs/ollama.log", "started_by": "sollama 0.1 (u@h)"}

`read_pidfile()` returns None when there is no file. A file holding a bare number gives a PidRecord with only
`pid` set (`problem="bare pid number"`); a file with anything else unreadable gives `pid=0` and `problem` set.
Neither can ever be verified, so nothing is signalled on their word. `verify()` accepts a process only when the
pid exists AND its creation time matches within 0.01 s AND its command line is the recorded one AND that command
line is an `ollama serve`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import psutil

from ollama_ops import paths
from ollama_ops.errors import ProcessError, RequestTimeout

CREATE_TIME_TOLERANCE = 0.01
ROTATED_LOGS = 3


@dataclass
class PidRecord:
    """One line of truth about the daemon sollama started."""

    pid: int
    create_time: float | None = None
    cmdline: list[str] = field(default_factory=list)
    host: str = ""
    base_url: str = ""
    binary: str = ""
    started_at: str = ""
    log: str = ""
    started_by: str = ""
    problem: str | None = None  # set when the file was not a full record (never written to the file)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("problem")
        return json.dumps(data, indent=2)


def pidfile_path() -> Path:
    return paths.state_dir() / "server.json"


def lock_path() -> Path:
    return paths.state_dir() / "server.lock"


def logs_dir() -> Path:
    return paths.state_dir() / "logs"


def log_path() -> Path:
    """The daemon's current log (its stdout and stderr)."""
    return logs_dir() / "ollama.log"


def server_log_paths() -> list[Path]:
    """The daemon's log files that exist, the current one first, then the rotated ones newest first."""
    current = log_path()
    candidates = [current] + [current.with_name(f"{current.name}.{i}") for i in range(1, ROTATED_LOGS + 1)]
    return [p for p in candidates if p.is_file()]


def read_pidfile(path: Path | None = None) -> PidRecord | None:
    """The recorded daemon, or None when there is no pid file (see the module docstring for odd files)."""
    path = path or pidfile_path()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return PidRecord(pid=0, problem=f"unreadable: {exc.strerror or exc}")
    stripped = text.strip()
    if stripped.isdigit():
        return PidRecord(pid=int(stripped), problem="bare pid number")
    try:
        data = json.loads(stripped)
    except ValueError:
        return PidRecord(pid=0, problem="not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or isinstance(data.get("pid"), bool):
        return PidRecord(pid=0, problem="no pid in the record")
    create_time = data.get("create_time")
    cmdline = data.get("cmdline")
    record = PidRecord(
        pid=data["pid"],
        create_time=float(create_time) if isinstance(create_time, (int, float)) else None,
        cmdline=[str(c) for c in cmdline] if isinstance(cmdline, list) else [],
        **{k: str(data.get(k) or "") for k in ("host", "base_url", "binary", "started_at", "log", "started_by")},
    )
    if record.create_time is None or not record.cmdline:
        record.problem = "incomplete record"
    return record


def write_pidfile(record: PidRecord, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a record."""
    path = path or pidfile_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(record.to_json() + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_pidfile(path: Path | None = None) -> bool:
    path = path or pidfile_path()
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def is_serve_cmdline(cmdline: list[str]) -> bool:
    """Whether a command line runs an Ollama server: `serve` as an argument (`/path/ollama serve`, or an
    interpreter or wrapper running one)."""
    return "serve" in cmdline[1:]


def verify(record: PidRecord | None, *,
           accepts: Callable[[list[str]], bool] = is_serve_cmdline) -> psutil.Process | None:
    """The live process the record describes, or None: pid AND creation time AND command line must match, and
    that command line must be one `accepts` (by default an `ollama serve`; a record naming any other program is
    never trusted)."""
    if record is None or record.pid <= 0 or record.create_time is None or not record.cmdline:
        return None
    if not accepts(record.cmdline):
        return None
    return _verify_process(record.pid, record.create_time, record.cmdline)


def _verify_process(pid: int, create_time: float, cmdline: list[str]) -> psutil.Process | None:
    """The live process with this pid, creation time (within 0.01 s) and command line, or None."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return None
        if proc.cmdline() != cmdline:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return proc


def describe_pid(pid: int) -> str | None:
    """'name (pid N): cmdline' for a live pid, None when it does not exist."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            try:
                cmd = " ".join(proc.cmdline())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmd = ""
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return f"pid {pid} (owned by another user)"
    return f"{name} (pid {pid})" + (f": {cmd[:120]}" if cmd else "")


def why_stale(record: PidRecord) -> str:
    """Why a pid file that does not verify is stale, in words."""
    if record.problem and record.pid <= 0:
        return f"the pid file is {record.problem}"
    other = describe_pid(record.pid) if record.pid > 0 else None
    if record.problem:
        prefix = f"the pid file holds a {record.problem}" if record.problem == "bare pid number" else \
            f"the pid file is an {record.problem}"
        return f"{prefix} ({record.pid})" + (f", now {other}" if other else ", no such process")
    if other is None:
        return f"process {record.pid} is gone"
    return f"pid {record.pid} now belongs to another process: {other}"


# -- the lock ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def server_lock(timeout: float, path: Path | None = None) -> Iterator[None]:
    """Hold `state_dir/server.lock` (fcntl.flock): one start/stop/cleanup at a time.

    The descriptor is close-on-exec, so a daemon spawned while the lock is held does not inherit it."""
    path = path or lock_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RequestTimeout(f"another sollama is starting or stopping the daemon (lock {path} "
                                         f"held for more than {timeout:g}s)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool | None]:
    """Try the lock once without waiting: yields True while we hold it, False while someone else does, None when
    the lock file cannot be opened (gone: nothing to hold)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def lock_is_free(path: Path | None = None) -> bool:
    """True when nobody holds the lock (it is taken and released at once to find out)."""
    with _try_lock(path or lock_path()) as held:
        return held is not False


def remove_free_lock(path: Path | None = None) -> bool:
    """Unlink the lock file, only while we hold it and no verified daemon runs."""
    path = path or lock_path()
    with _try_lock(path) as held:
        if not held or verify(read_pidfile()) is not None:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            return True
        return False


# -- the process ------------------------------------------------------------------------------------------------

class ServerProcess:
    """`ollama serve` started by us: spawn detached, follow, stop. Only ever signals the verified process."""

    def __init__(self, proc: psutil.Process, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.proc = proc
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def spawn(cls, command: list[str], env: Mapping[str, str], log: Path, *, detach: bool = True,
              stdout: int | IO[bytes] | None = None) -> ServerProcess:
        """Start `command` in its own session with stdout+stderr appended to `log` (or to `stdout`)."""
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(log, "ab") as fh:
            sink = fh if stdout is None else stdout
            try:
                popen = subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL, stdout=sink,
                                         stderr=subprocess.STDOUT, start_new_session=detach, close_fds=True)
            except OSError as exc:
                raise ProcessError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
        return cls(psutil.Process(popen.pid), popen)

    def record(self, cmdline: list[str], **fields: str) -> PidRecord:
        """The pid-file record for this process (`cmdline` is what it runs once any wrapper has exec'd)."""
        return PidRecord(pid=self.pid, create_time=self.proc.create_time(), cmdline=list(cmdline), **fields)

    def cmdline(self) -> list[str]:
        """The command line it runs now (empty when it is gone or unreadable)."""
        try:
            return list(self.proc.cmdline())
        except psutil.Error:
            return []

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            return self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def children(self) -> list[psutil.Process]:
        try:
            return self.proc.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float) -> str:
        """SIGTERM, wait up to `timeout`, then SIGKILL (and its leftover children). Returns "exited",
        "sigterm" or "sigkill": how it ended."""
        if not self.alive():
            self._reap()
            return "exited"
        children = self.children()
        how = "sigterm"
        try:
            self.proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            self._reap()
            return "exited"
        except psutil.AccessDenied:
            raise ProcessError(f"not allowed to signal pid {self.pid} (it belongs to another user)",
                               hint="run as that user, or with sudo") from None
        if not self._wait(timeout):
            how = "sigkill"
            with contextlib.suppress(psutil.NoSuchProcess):
                self.proc.kill()
            self._wait(5.0)
        # Runners the server did not get to stop (it was killed) would otherwise hold their memory.
        _, alive = psutil.wait_procs(children, timeout=min(timeout, 3.0))
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self._reap()
        return how

    def _wait(self, timeout: float) -> bool:
        try:
            if self.popen is not None:
                self.popen.wait(timeout=timeout)
            else:
                self.proc.wait(timeout=timeout)
            return True
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            return False
        except psutil.NoSuchProcess:
            return True

    def _reap(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.1)


def terminate_verified(pid: int, create_time: float, cmdline: list[str], timeout: float) -> str | None:
    """Stop a process only if it is still exactly the one seen (pid, creation time, command line)."""
    proc = _verify_process(pid, create_time, cmdline)
    if proc is None:
        return None
    return ServerProcess(proc).stop(timeout)


# -- orphaned runners -------------------------------------------------------------------------------------------

@dataclass
class OrphanRunner:
    """An Ollama model runner whose server is gone, as seen (re-verified before it is signalled)."""

    pid: int
    create_time: float
    cmdline: list[str]
    ppid: int
    rss: int
    exe: str = ""


def _is_ollama_exe(arg0: str, binaries: set[str]) -> bool:
    return os.path.basename(arg0) == "ollama" or arg0 in binaries


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _serves(parent: psutil.Process, runner_exe: str) -> bool | None:
    """Whether `parent` is the live Ollama server of a runner whose executable is `runner_exe` (Ollama starts
    runners from its own executable, `os.Executable()`): it runs that same file (however the server was named or
    linked when started) with the `serve` command. None when that cannot be read (another user's process)."""
    try:
        with parent.oneshot():
            if parent.status() == psutil.STATUS_ZOMBIE:
                return False
            exe, cmd = parent.exe(), parent.cmdline()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if "serve" not in cmd[1:]:
        return False
    return exe == runner_exe or _same_file(exe, runner_exe)


def is_orphan_runner(proc: psutil.Process, runner_exe: str) -> bool:
    """A runner is orphaned when its parent is gone (it was re-parented to PID 1 or a subreaper, neither of which
    is an Ollama server running its executable) and so no live Ollama serves it. Never decided by the parent's
    program name: a daemon started through a differently named link or copy still serves its runners."""
    try:
        ppid = proc.ppid()
    except psutil.Error:
        return False
    if ppid <= 1:
        return True
    try:
        parent = psutil.Process(ppid)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    return _serves(parent, runner_exe) is False


def find_orphan_runners(binaries: set[str] | None = None) -> list[OrphanRunner]:
    """Runner processes (`<ollama> runner ...`) that no live Ollama server serves (see `is_orphan_runner`).
    `binaries` adds executable paths not named `ollama` that count as Ollama."""
    binaries = binaries or set()
    orphans = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "create_time"]):
        info = proc.info
        cmd = info.get("cmdline") or []
        if len(cmd) < 2 or cmd[1] != "runner":
            continue
        try:
            exe = proc.exe()
        except psutil.Error:
            continue  # not ours to judge (another user's, or gone)
        if not (_is_ollama_exe(cmd[0], binaries) or _is_ollama_exe(exe, binaries)):
            continue
        if not is_orphan_runner(proc, exe):
            continue
        with contextlib.suppress(psutil.Error):
            orphans.append(OrphanRunner(proc.pid, float(info["create_time"]), list(cmd), int(info.get("ppid") or 0),
                                        proc.memory_info().rss, exe))
    return orphans


def terminate_orphan(orphan: OrphanRunner, timeout: float) -> str | None:
    """Stop an orphaned runner only if it is still exactly the process seen (pid, creation time, command line)
    and still orphaned; None when it was left alone."""
    proc = _verify_process(orphan.pid, orphan.create_time, orphan.cmdline)
    if proc is None:
        return None
    try:
        exe = proc.exe()  # what it runs now, not what the plan noted
    except psutil.Error:
        return None
    if not is_orphan_runner(proc, exe):
        return None
    return ServerProcess(proc).stop(timeout)
