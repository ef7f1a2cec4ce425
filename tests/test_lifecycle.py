"""`sollama start/stop/restart/logs/service` without the real daemon: pid files, stale records, fake binaries
that die or hang, a port held by another program, dry runs, logs. (The real daemon: test_lifecycle_real.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.edges import process as pf
from ollama_ops.services import launch, logs
from tests.lifecycle_helpers import (
    end,
    fake_binary,
    foreign_record,
    free_host,
    spawn_sleep,
    stop_our_daemon,
    wait_for,
    write_pidfile_text,
)


@pytest.fixture(autouse=True)
def _teardown():
    yield
    stop_our_daemon()


# -- pid file and verification ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "pid", "problem"), [
    ("1234\n", 1234, "bare pid number"),
    ("garbage{", 0, "not JSON"),
    ('{"pid": "x"}', 0, "no pid in the record"),
    ('{"pid": 77}', 77, "incomplete record"),
    ("[]", 0, "no pid in the record"),
])
def test_read_pidfile_odd_contents(text, pid, problem):
    write_pidfile_text(text)
    record = pf.read_pidfile()
    assert record is not None and (record.pid, record.problem) == (pid, problem)
    assert pf.verify(record) is None


def test_read_pidfile_absent_is_none():
    assert pf.read_pidfile() is None


def test_write_read_verify_roundtrip_and_mismatches():
    # a stand-in daemon: its command line is an `... serve` (a record of any other program is never trusted)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serve"])
    try:
        assert wait_for(lambda: psutil.Process(sleeper.pid).cmdline()[-1:] == ["serve"], 5)
        proc = psutil.Process(sleeper.pid)
        record = pf.PidRecord(pid=sleeper.pid, create_time=proc.create_time(), cmdline=proc.cmdline(),
                              host="127.0.0.1:1", base_url="http://127.0.0.1:1")
        pf.write_pidfile(record)
        back = pf.read_pidfile()
        assert back == record and back.problem is None
        assert pf.verify(back) is not None and pf.verify(back).pid == sleeper.pid
        assert "problem" not in json.loads(pf.pidfile_path().read_text())
        assert pf.verify(pf.PidRecord(**{**back.__dict__, "create_time": back.create_time + 0.5})) is None
        assert pf.verify(pf.PidRecord(**{**back.__dict__, "cmdline": ["sleep", "31"]})) is None
    finally:
        end(sleeper)
    assert pf.verify(record) is None  # gone


def test_lock_serialises_and_times_out():
    with pf.server_lock(1.0):
        assert not pf.lock_is_free()
        from ollama_ops.errors import RequestTimeout

        # flock locks belong to the open file description: a second open in this process must wait too.
        with pytest.raises(RequestTimeout, match="lock"), pf.server_lock(0.2):
            pass
    assert pf.lock_is_free()


# -- stop with stale pid files: nothing is signalled ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["json-foreign", "bare-number"])
def test_stop_with_stale_pidfile_pointing_at_live_process_removes_it_and_signals_nothing(sollama, kind):
    sleeper = spawn_sleep()
    try:
        write_pidfile_text(foreign_record(sleeper.pid) if kind == "json-foreign" else f"{sleeper.pid}\n")
        result = sollama("stop", "--timeout", "1")
        assert result.exit_code == 0, result.output
        assert "stale" in result.output and str(sleeper.pid) in result.output
        assert "sleep" in result.output  # names what the pid belongs to now
        assert not pf.pidfile_path().exists()
        assert sleeper.poll() is None and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        end(sleeper)


def test_stop_with_pidfile_of_gone_process(sollama):
    sleeper = spawn_sleep()
    record = foreign_record(sleeper.pid)
    end(sleeper)
    write_pidfile_text(record)
    result = sollama("stop", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "stale" and "is gone" in data["stale_reason"]
    assert not pf.pidfile_path().exists()


def test_stop_when_nothing_runs_exits_0_with_a_note(sollama):
    result = sollama("--host", free_host(), "stop")
    assert result.exit_code == 0, result.output
    assert "nothing to stop" in result.output


# -- start: dry run, env, binary discovery ------------------------------------------------------------------------

def test_dry_run_prints_command_and_env_and_starts_nothing(sollama, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    binary = fake_binary(tmp_path / "bin", f"touch {marker}; exit 1")
    monkeypatch.setenv("SOLLAMA_SERVER_NUM_PARALLEL", "3")
    monkeypatch.setenv("SOLLAMA_SERVER_FLASH_ATTENTION", "true")
    host = free_host()
    result = sollama("--host", host, "start", "--dry-run", "--binary", str(binary), "-e", "OLLAMA_DEBUG=1",
                     "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "dry-run" and data["pid"] is None
    assert data["command"] == [str(binary.resolve()), "serve"]
    env = data["env"]
    assert env["OLLAMA_HOST"] == f"http://{host}" and env["OLLAMA_DEBUG"] == "1"
    assert env["OLLAMA_NUM_PARALLEL"] == "3" and data["env_sources"]["OLLAMA_NUM_PARALLEL"] == "server.num_parallel"
    assert env["OLLAMA_FLASH_ATTENTION"] == "1" and env["OLLAMA_KEEP_ALIVE"] == "5m"
    assert "full_env" not in data
    assert not marker.exists() and not pf.pidfile_path().exists()
    human = sollama("--host", host, "start", "--dry-run", "--binary", str(binary), "-e", "OLLAMA_DEBUG=1")
    assert human.exit_code == 0 and "would run:" in human.stdout and "OLLAMA_DEBUG=1" in human.stdout


def test_env_order_config_then_extra_env_then_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("SOLLAMA_SERVER_EXTRA_ENV", '{"OLLAMA_KEEP_ALIVE": "1h", "OLLAMA_X": "a"}')
    settings = load_settings()
    full, env, sources, _ = launch.build_env(settings, {"OLLAMA_X": "b"}, base={"HOME": str(tmp_path)})
    assert env["OLLAMA_KEEP_ALIVE"] == "1h" and sources["OLLAMA_KEEP_ALIVE"] == "server.extra_env"
    assert env["OLLAMA_X"] == "b" and sources["OLLAMA_X"] == "--env"
    assert full["HOME"] == str(tmp_path) and "HOME" not in env


@pytest.mark.parametrize("home", [None, "/nonexistent/home"])
def test_unwritable_home_falls_back_to_state_dir(home):
    settings = load_settings()
    base = {} if home is None else {"HOME": home}
    full, env, _, notes = launch.build_env(settings, {}, base=base)
    assert env["HOME"].endswith("ollama-home") and Path(env["HOME"]).is_dir() and full["HOME"] == env["HOME"]
    assert any("not writable" in n for n in notes)


def test_bad_env_pair_is_usage_error(sollama):
    result = sollama("start", "--dry-run", "-e", "NOEQUALS")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


def test_binary_discovery_order(tmp_path, monkeypatch):
    on_path = fake_binary(tmp_path / "path", "exit 0")
    configured = fake_binary(tmp_path / "conf", "exit 0")
    explicit = fake_binary(tmp_path / "flag", "exit 0")
    tools = tmp_path / "tools"
    built = fake_binary(tools / "bin", "exit 0")
    monkeypatch.setenv("SOLLAMA_TOOLS", str(tools))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("SOLLAMA_OLLAMA_BIN", raising=False)
    assert launch.find_binary(load_settings()) == str(built)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert launch.find_binary(load_settings()) == str(on_path)
    monkeypatch.setenv("SOLLAMA_OLLAMA_BIN", str(configured))
    assert launch.find_binary(load_settings()) == str(configured)
    assert launch.find_binary(load_settings(), str(explicit)) == str(explicit)


def test_missing_binary_names_the_install_script(sollama, tmp_path, monkeypatch):
    monkeypatch.setenv("SOLLAMA_TOOLS", str(tmp_path / "no-tools"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("SOLLAMA_OLLAMA_BIN", raising=False)
    result = sollama("start", "--dry-run")
    assert result.exit_code == 1 and "scripts/install-ollama.sh" in result.stderr
    result = sollama("start", "--binary", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "not an executable" in result.stderr


def test_enforce_without_a_usable_cgroup_warns_and_goes_on(sollama, tmp_path):
    binary = fake_binary(tmp_path / "bin", "exit 1")
    result = sollama("start", "--dry-run", "--enforce", "--binary", str(binary), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    if data["command"][0].endswith("systemd-run"):  # a machine with a working systemd
        assert any(a.startswith("MemoryMax=") for a in data["command"])
    else:
        assert "no usable cgroup here; starting without a hard memory cap" in result.stderr


def test_cgroup_wrapper_when_systemd_runs(monkeypatch):
    monkeypatch.setattr(launch.shutil, "which", lambda name: f"/usr/bin/{name}")

    class Done:
        stdout = "degraded\n"

    wrapper = launch.cgroup_wrapper(1 << 30, run=lambda *a, **k: Done())
    assert wrapper is not None and wrapper[0] == "/usr/bin/systemd-run" and "--scope" in wrapper
    assert "MemoryMax=1073741824" in wrapper
    Done.stdout = "offline\n"
    assert launch.cgroup_wrapper(1 << 30, run=lambda *a, **k: Done()) is None


def test_remote_address_is_refused(sollama, tmp_path):
    binary = fake_binary(tmp_path / "bin", "exit 1")
    result = sollama("--host", "10.1.2.3:11434", "start", "--binary", str(binary))
    assert result.exit_code == 2 and "not an address of this machine" in result.stderr


# -- start: failures ------------------------------------------------------------------------------------------------

def test_daemon_dying_at_start_exits_1_with_its_log_lines(sollama, tmp_path):
    binary = fake_binary(tmp_path / "bin", 'echo "fake: warming up"; echo "Error: something broke here" >&2; exit 1')
    result = sollama("--host", free_host(), "start", "--binary", str(binary), "--timeout", "10")
    assert result.exit_code == 1, result.output
    assert "exited with code 1 while starting" in result.stderr
    assert "Error: something broke here" in result.stderr and "fake: warming up" in result.stderr
    assert not pf.pidfile_path().exists()


def test_timeout_against_slow_binary_exits_5_and_cleans_up(sollama, tmp_path):
    pidfile = tmp_path / "fake.pid"
    binary = fake_binary(tmp_path / "bin", 'echo "slow fake starting"; echo $$ > "$FAKE_PID"; exec sleep 30')
    result = sollama("--host", free_host(), "start", "--binary", str(binary), "--timeout", "0.8",
                     "-e", f"FAKE_PID={pidfile}")
    assert result.exit_code == 5, result.output
    assert "did not answer" in result.stderr and "slow fake starting" in result.stderr
    pid = int(pidfile.read_text())
    assert wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 5)
    assert not pf.pidfile_path().exists()


def test_port_held_by_non_ollama_listener_exits_1_naming_it(sollama, tmp_path):
    host = free_host()
    port = host.rsplit(":", 1)[1]
    empty = tmp_path / "www"
    empty.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", port], cwd=empty,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from tests.lifecycle_helpers import nothing_listens

        assert wait_for(lambda: not nothing_listens(host), 10)
        binary = fake_binary(tmp_path / "bin", "exit 1")
        result = sollama("--host", host, "start", "--binary", str(binary))
        assert result.exit_code == 1, result.output
        assert f"port {port} is held by" in result.stderr and f"pid {server.pid}" in result.stderr
        assert "--host" in result.stderr
        assert server.poll() is None
    finally:
        end(server)


# -- logs -----------------------------------------------------------------------------------------------------------

def _write_log(lines: list[str], rotated: list[str] | None = None) -> Path:
    log = pf.log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"{ln}\n" for ln in lines))
    if rotated is not None:
        log.with_name("ollama.log.1").write_text("".join(f"{ln}\n" for ln in rotated))
    return log


def test_logs_last_lines_errors_and_json(sollama):
    _write_log(["b1", 'time=x level=ERROR msg="load failed"', "b3"], rotated=["a1", "a2 Error: old"])
    result = sollama("logs", "-n", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ['time=x level=ERROR msg="load failed"', "b3"]
    result = sollama("logs", "-n", "4")
    assert result.stdout.splitlines() == ["a2 Error: old", "b1", 'time=x level=ERROR msg="load failed"', "b3"]
    result = sollama("logs", "--errors")
    assert result.stdout.splitlines() == ["a2 Error: old", 'time=x level=ERROR msg="load failed"']
    data = json.loads(sollama("logs", "-n", "1", "--json").stdout)
    assert data["lines"] == ["b3"] and len(data["files"]) == 2


def test_logs_without_a_log_and_follow_without_daemon(sollama):
    result = sollama("logs")
    assert result.exit_code == 0 and result.stdout == "" and "no daemon log yet" in result.stderr
    _write_log(["x"])
    result = sollama("logs", "-f")
    assert result.exit_code == 0 and result.stdout == "x\n" and "not following" in result.stderr
    assert sollama("logs", "-f", "--json").exit_code == 2


def test_follow_log_yields_new_lines_until_the_daemon_exits(tmp_path):
    log = tmp_path / "d.log"
    log.write_text("old line\n")
    calls = []

    def alive() -> bool:
        calls.append(1)
        if len(calls) == 1:
            with open(log, "a") as fh:
                fh.write("new 1\nlevel=ERROR new 2\npartial")
            return True
        return False

    got = list(logs.follow_log(log, alive=alive, poll=0.01, alive_every=0))
    assert got == ["new 1", "level=ERROR new 2", "partial"]
    calls.clear()
    assert list(logs.follow_log(log, alive=alive, poll=0.01, alive_every=0, errors_only=True)) == \
        ["level=ERROR new 2"]


def test_follow_log_reads_a_rotated_file_from_its_start(tmp_path):
    log = tmp_path / "d.log"
    log.write_text("x" * 100 + "\n")
    step = iter(range(10))

    def alive() -> bool:
        n = next(step)
        if n == 0:
            log.write_text("after rotation\n")  # truncated and rewritten: smaller than the position
        return n < 2

    assert list(logs.follow_log(log, alive=alive, poll=0.01, alive_every=0)) == ["after rotation"]


# -- service unit ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "wanted_by"), [([], "multi-user.target"), (["--user"], "default.target")])
def test_service_unit(sollama, flag, wanted_by):
    result = sollama("service", "unit", *flag)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "[Service]" in text and f"WantedBy={wanted_by}" in text
    exec_line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_line.endswith("start --foreground") and "sollama" in exec_line
    assert 'Environment="SOLLAMA_HOME=' in text


# -- foreground --------------------------------------------------------------------------------------------------------

def test_foreground_forwards_sigterm_and_exits_with_its_code(tmp_path):
    """A fake daemon that answers like Ollama: `start --foreground` runs it attached; SIGTERM to sollama
    reaches it."""
    script = tmp_path / "fakeollama.py"
    script.write_text(FAKE_OLLAMA)
    binary = fake_binary(tmp_path / "bin", f'exec {sys.executable} {script} "$@"')
    host = free_host()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("sollama")), "--host", host, "start",
                             "--foreground", "--binary", str(binary)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: pf.verify(pf.read_pidfile()) is not None, 15), proc.stderr
        record = pf.read_pidfile()
        # the wrapper script exec'd: the record holds what really runs, so verification works
        assert record.cmdline == [sys.executable, str(script), "serve"]
        from tests.lifecycle_helpers import nothing_listens

        assert wait_for(lambda: not nothing_listens(host), 10)
        threading.Timer(0.1, proc.terminate).start()  # SIGTERM to sollama: forwarded to the daemon
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, (proc.returncode, err)  # the fake exits 0 on SIGTERM
        assert "fake ollama got signal 15" in err
        assert "fake ollama listening" in err  # the daemon's output is passed through to stderr
        assert "fake ollama listening" in pf.log_path().read_text()
        assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


FAKE_OLLAMA = r'''
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
host, port = os.environ["OLLAMA_HOST"].split("://")[-1].rsplit(":", 1)

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"version": "0.0.0"}' if self.path == "/api/version" else b"Ollama is running"
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

def bye(signum, frame):
    print("fake ollama got signal", signum, flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, bye)
server = HTTPServer((host, int(port)), H)
print("fake ollama listening", flush=True)
server.timeout = 0.2
for _ in range(300):
    server.handle_request()
'''
