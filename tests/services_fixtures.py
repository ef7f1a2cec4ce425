"""Real Redis and PostgreSQL for tests: each started once per session on a free loopback port with its own data
dir, readiness awaited, and stopped by the PID we started (never by name).

The Debian packages `redis-server` and `postgresql` provide them (`.ci/run` installs both). PostgreSQL refuses to
run as root, so under root initdb/postgres run as the `postgres` system user (the package creates it); its data
dir then lives in a private temp dir that user can reach (pytest's own tmp root is 0700 root), removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 20.0) -> None:
    """Signal the PID we started, wait, then SIGKILL that PID only."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# -- Redis -----------------------------------------------------------------------------------------------------

@dataclass
class RedisServer:
    url: str
    port: int
    pid: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(data_dir: Path, port: int | None = None) -> RedisServer:
    """`redis-server` on 127.0.0.1:PORT, no persistence, its dir and log in `data_dir`; waits for PING."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file()
                                              else None)
    if binary is None:
        _missing("no redis-server (apt-get install -y redis-server)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", str(data_dir / "redis.log")]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port, proc.pid, data_dir, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{server.log_tail()}")
        if _redis_ping(port):
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redis-server not ready within 30s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


# -- PostgreSQL ------------------------------------------------------------------------------------------------

def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin with initdb and postgres (Debian keeps them off PATH)."""
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        major = Path(path).parent.name
        if major.isdigit() and (Path(path) / "initdb").is_file() and (Path(path) / "postgres").is_file():
            found.append((int(major), Path(path)))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    url: str  # the maintenance database `postgres`
    port: int
    pid: int
    dir: Path
    proc: subprocess.Popen[bytes]
    user: str

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.dir / "postgres.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # SIGINT = PostgreSQL's fast shutdown


def _run_as() -> tuple[str | None, str]:
    """(user to switch to, database superuser name): under root the `postgres` system user, else ourselves."""
    if os.geteuid() != 0:
        return None, pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _missing("running as root and no `postgres` user to run PostgreSQL as (apt-get install -y postgresql)")
    return "postgres", "postgres"


def start_postgres(port: int | None = None) -> PostgresServer:
    """initdb into a fresh private dir, then `postgres` on 127.0.0.1:PORT (trust auth on loopback only, fsync
    off: test data is disposable); waits until a connection succeeds."""
    import psycopg

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _missing("no PostgreSQL server binaries (apt-get install -y postgresql)")
    user, superuser = _run_as()
    root = Path(tempfile.mkdtemp(prefix="sollama-pg-"))
    data = root / "data"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    os.chmod(root, 0o700)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(root)}
    init = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", superuser, "--auth=trust", "-E", "UTF8",
                           "--no-sync", "--no-instructions"],
                          user=user, env=env, cwd=root, capture_output=True, text=True, timeout=180)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    port = port or _free_port()
    log = root / "postgres.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if user is not None:
        os.fchown(fd, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=100", "-c", "shared_buffers=32MB"]
    try:
        proc = subprocess.Popen(args, user=user, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=fd, start_new_session=True)
    finally:
        os.close(fd)
    server = PostgresServer(f"postgresql://{superuser}@127.0.0.1:{port}/postgres", port, proc.pid, root, proc,
                            superuser)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = server.log_tail()
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"postgres exited with {proc.returncode}:\n{tail}")
        try:
            with psycopg.connect(server.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return server
        except psycopg.OperationalError:
            time.sleep(0.1)
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"postgres not ready within 60s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database in the session's PostgreSQL, for this test only."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.dsn(name)
