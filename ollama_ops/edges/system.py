"""Facts about this machine: who listens on a port, process trees, RAM, GPUs, disk (psutil + nvidia-smi).

The only module that imports psutil for these facts; it does so inside each function so that importing this
module stays cheap. Every function answers for the local machine only and never raises for an ordinary
"not there" (a free port, a vanished process, no nvidia-smi): it returns None / an empty list instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil


@dataclass
class ProcInfo:
    """The process that listens on a TCP port. `pid` is None when the OS does not tell us (another user)."""

    pid: int | None
    name: str
    cmdline: list[str] = field(default_factory=list)
    username: str | None = None
    address: str = ""  # the local IP it is bound to ("0.0.0.0", "127.0.0.1", "::")
    create_time: float | None = None


@dataclass
class ProcStats:
    """A process and its children together (e.g. `ollama serve` and its model runners)."""

    pid: int
    name: str
    rss: int  # bytes, the process and all its children
    cpu_percent: float  # summed over the tree; 100 = one core busy
    uptime_s: float
    children: int
    child_rss: int = 0


@dataclass
class MemoryFacts:
    total: int
    available: int
    swap_total: int
    swap_used: int


@dataclass
class GpuInfo:
    name: str
    total: int  # bytes of VRAM
    used: int


def listener_on(port: int) -> ProcInfo | None:
    """The process listening on TCP `port` on any local address, or None when the port is free."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        address = str(conn.laddr.ip)
        if conn.pid is None:
            return ProcInfo(pid=None, name="unknown", address=address)
        return _proc_info(conn.pid, address)
    return None


def _process_tree(pid: int) -> list[psutil.Process] | None:
    """`pid` and all its children, the root first; None when it is gone or not ours to read."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def tree_listens_on(pid: int, port: int) -> bool:
    """Whether `pid` or one of its children listens on TCP `port` (reads only their own sockets)."""
    import psutil

    for proc in _process_tree(pid) or []:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return True
    return False


def _proc_info(pid: int, address: str = "") -> ProcInfo:
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            create_time = proc.create_time()
            try:
                cmdline, username = proc.cmdline(), proc.username()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline, username = [], None
    except psutil.NoSuchProcess:
        return ProcInfo(pid=pid, name="exited", address=address)
    except psutil.AccessDenied:
        return ProcInfo(pid=pid, name="unknown", address=address)
    return ProcInfo(pid=pid, name=name, cmdline=cmdline, username=username, address=address,
                    create_time=create_time)


@dataclass
class TreeSample:
    """A CPU measurement window opened on a process tree (`begin_tree_sample`), closed by `finish_tree_sample`."""

    pid: int
    procs: list[psutil.Process]  # the root first
    started: float


def begin_tree_sample(pid: int) -> TreeSample | None:
    """Open the CPU window on `pid` and its children now; None if it is gone."""
    import psutil

    procs = _process_tree(pid)
    if procs is None:
        return None
    for proc in procs:
        try:
            proc.cpu_percent(None)  # the first call starts the measurement window
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return TreeSample(pid=pid, procs=procs, started=time.monotonic())


def finish_tree_sample(sample: TreeSample | None, min_s: float = 0.1) -> ProcStats | None:
    """RSS and CPU of the tree; the window lasts at least `min_s` seconds since it was opened (only the rest of
    it is slept, so work done in between counts towards it). None if the process is gone."""
    import psutil

    if sample is None:
        return None
    time.sleep(max(0.0, min_s - (time.monotonic() - sample.started)))
    root = sample.procs[0]
    rss = child_rss = 0
    cpu = 0.0
    for proc in sample.procs:
        try:
            with proc.oneshot():
                mem = proc.memory_info().rss
                cpu += proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += mem
        if proc is not root:
            child_rss += mem
    try:
        name, uptime = root.name(), max(0.0, time.time() - root.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return ProcStats(pid=sample.pid, name=name, rss=rss, cpu_percent=round(cpu, 1), uptime_s=uptime,
                     children=len(sample.procs) - 1, child_rss=child_rss)


def process_tree_stats(pid: int, sample_s: float = 0.1) -> ProcStats | None:
    """RSS and CPU of `pid` plus its children, sampled over `sample_s` seconds; None if it is gone."""
    return finish_tree_sample(begin_tree_sample(pid), sample_s)


def process_environ(pid: int) -> dict[str, str]:
    """The environment of a process (same user only); empty when it cannot be read."""
    import psutil

    try:
        return dict(psutil.Process(pid).environ())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return {}


def memory_facts() -> MemoryFacts:
    import psutil

    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    return MemoryFacts(total=int(vm.total), available=int(vm.available), swap_total=int(sw.total),
                       swap_used=int(sw.used))


def gpu_facts(timeout: float = 5.0) -> list[GpuInfo]:
    """NVIDIA GPUs from `nvidia-smi` (empty when there is none or it fails)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run([smi, "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return parse_nvidia_smi(done.stdout)


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Rows of `name, total MiB, used MiB` into GpuInfo (bytes); odd rows are skipped."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3:
            continue
        try:
            gpus.append(GpuInfo(name=parts[0], total=int(float(parts[1]) * 2**20), used=int(float(parts[2]) * 2**20)))
        except ValueError:
            continue
    return gpus


def existing_parent(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (where a directory would be created)."""
    path = Path(path).expanduser()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_free(path: str | Path) -> int:
    """Free bytes on the filesystem holding `path` (or the ancestor that would hold it)."""
    return shutil.disk_usage(existing_parent(Path(path))).free


def disk_total(path: str | Path) -> int:
    return shutil.disk_usage(existing_parent(Path(path))).total


def is_writable_dir(path: str | Path) -> bool:
    """True when `path` is a writable directory, or does not exist yet and its nearest ancestor is writable."""
    target = existing_parent(Path(path))
    return target.is_dir() and os.access(target, os.W_OK | os.X_OK)


def unwritable_reason(path: str | Path) -> str | None:
    """Why files cannot be created in directory `path` (or, while it does not exist, in the ancestor that would
    hold it), or None when they can. Tried for real with a temporary file, because permission bits do not show
    an immutable directory, a read-only mount, or root's view."""
    import errno
    import tempfile

    target = existing_parent(Path(path))
    if not target.is_dir():
        return f"{target} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".sollama-doctor-"):
            pass
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            return f"{target} is read-only or immutable ({exc.strerror})"
        return f"cannot create a file in {target}: {exc.strerror or exc}"
    return None
