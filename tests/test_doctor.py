"""`sollama doctor`: the verdicts (core.health), the facts (edges.system) and the command end to end."""

from __future__ import annotations

import json
import os
import socket

import pytest

from ollama_ops.core import health
from ollama_ops.core.health import FAIL, PASS, WARN, Check
from ollama_ops.edges import system
from tests import conftest
from tests.conftest import free_port

GIB = 2**30


def checks_of(stdout: str) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(stdout)["checks"]}


# -- verdicts ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "version"), [
    ("ollama version is 0.23.2\n", "0.23.2"),
    ("Warning: could not connect to a running Ollama instance\nWarning: client version is 0.23.2\n", "0.23.2"),
    ("ollama version is 0.0.0", "0.0.0"),
    ("something else", None),
])
def test_parse_version_output(text, version):
    assert health.parse_version_output(text) == version


@pytest.mark.parametrize(("free", "status"), [(None, WARN), (GIB // 2, FAIL), (5 * GIB, WARN), (50 * GIB, PASS)])
def test_models_dir_free_space_thresholds(free, status):
    assert health.check_models_dir("/m", True, free).status == status


def test_unwritable_models_dir_fails_with_a_fix():
    check = health.check_models_dir("/m", False, 50 * GIB)
    assert check.status == FAIL and "models_dir" in check.fix


@pytest.mark.parametrize(("kw", "status"), [
    ({"local": False, "holder": None, "holder_is_ollama": False, "answers_as_ollama": False}, PASS),
    ({"local": True, "holder": None, "holder_is_ollama": False, "answers_as_ollama": False}, PASS),
    ({"local": True, "holder": "ollama pid 7", "holder_is_ollama": True, "answers_as_ollama": True}, PASS),
    ({"local": True, "holder": "nginx pid 9", "holder_is_ollama": False, "answers_as_ollama": False}, FAIL),
])
def test_port_verdicts(kw, status):
    check = health.check_port(11434, **kw)
    assert check.status == status
    if status == FAIL:
        assert "nginx pid 9" in check.detail and "--host" in check.fix


@pytest.mark.parametrize(("args", "status"), [
    ((16 * GIB, 8 * GIB, 0, 0, 12 * GIB), PASS),
    ((16 * GIB, GIB // 2, 0, 0, 12 * GIB), WARN),  # little available RAM
    ((16 * GIB, 8 * GIB, 4 * GIB, 3 * GIB, 12 * GIB), WARN),  # swapping
    ((16 * GIB, 8 * GIB, 0, 0, 0), FAIL),  # the reserve leaves nothing
])
def test_memory_verdicts(args, status):
    assert health.check_memory(*args).status == status


@pytest.mark.parametrize(("host", "loopback", "listener", "status"), [
    ("127.0.0.1:11434", True, None, PASS), ("127.0.0.1:11434", True, "127.0.0.1", PASS),
    ("127.0.0.1:11434", True, "0.0.0.0", WARN),  # configured loopback, but the daemon listens everywhere
    ("0.0.0.0:11434", False, None, WARN), ("[::1]:11434", True, "::1", PASS)])
def test_exposure_verdicts(host, loopback, listener, status):
    assert health.check_exposure(host, loopback, listener).status == status


def test_other_verdicts():
    assert health.check_binary(None, None).status == FAIL
    assert health.check_binary("/bin/ollama", None, "exec format error").status == FAIL
    assert health.check_binary("/bin/ollama", "0.23.2").status == PASS
    assert health.check_home("/h", False).status == WARN
    assert health.check_config("bad.yaml:3:1: invalid", None).status == FAIL
    assert health.check_pidfile(True, None, "process 5 is gone").status == WARN
    assert health.check_pidfile(True, 5, None).status == PASS
    assert health.check_gpu([("NVIDIA H100", 80 * GIB, GIB)], True).status == PASS
    assert health.check_gpu([], True).status == WARN
    assert health.overall([Check("a", PASS, ""), Check("b", WARN, "")]) == WARN
    assert health.overall([Check("a", FAIL, ""), Check("b", WARN, "")]) == FAIL


# -- facts ------------------------------------------------------------------------------------------------------

def test_parse_nvidia_smi():
    gpus = system.parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559, 1024\nbroken\n")
    assert [(g.name, g.total, g.used) for g in gpus] == [("NVIDIA H100 80GB HBM3", 81559 * 2**20, 1024 * 2**20)]


def test_listener_on_finds_this_process():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        info = system.listener_on(sock.getsockname()[1])
    assert info is not None and info.pid == os.getpid() and info.address == "127.0.0.1"
    assert system.listener_on(free_port()) is None


def test_disk_free_of_a_path_not_created_yet(tmp_path):
    assert system.disk_free(tmp_path / "a" / "b") == system.disk_free(tmp_path) > 0
    assert system.is_writable_dir(tmp_path / "a" / "b")


def test_process_tree_stats_of_this_process():
    stats = system.process_tree_stats(os.getpid(), sample_s=0.01)
    assert stats is not None and stats.rss > 0 and stats.uptime_s > 0


# -- the command ------------------------------------------------------------------------------------------------

@pytest.mark.ollama
def test_doctor_json_against_the_real_daemon(sollama, ollama):
    result = sollama("--host", ollama.host, "doctor", "--json")
    report = json.loads(result.stdout)
    checks = checks_of(result.stdout)
    assert result.exit_code == (1 if report["failed"] else 0), result.output
    assert checks["binary"]["status"] == PASS
    pinned = ollama.binary.startswith(str(conftest.TOOLS))  # our build; an ollama on PATH has its own version
    assert ("version 0.23.2" if pinned else "version ") in checks["binary"]["detail"]
    assert checks["port"]["status"] == PASS and "held by Ollama" in checks["port"]["detail"]
    assert checks["port"]["detail"].endswith(f"pid {ollama.pid})")
    assert checks["config"]["status"] == PASS and checks["exposure"]["status"] == PASS
    assert [c["name"] for c in report["checks"]] == ["binary", "port", "home", "models dir", "memory", "gpu",
                                                     "config", "pid file", "gateway", "sollama dirs", "exposure"]


def test_doctor_names_a_foreign_process_on_the_port(sollama):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = sollama("--host", f"127.0.0.1:{port}", "doctor", "--json")
    assert result.exit_code == 1, result.output
    port_check = checks_of(result.stdout)["port"]
    assert port_check["status"] == FAIL and f"pid {os.getpid()}" in port_check["detail"]
    assert "port" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_invalid_config_is_a_failed_check_not_exit_3(sollama, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  num_parallel: many\n")
    result = sollama("--config", str(bad), "--host", f"127.0.0.1:{free_port()}", "doctor", "--json")
    assert result.exit_code == 1, result.output
    config = checks_of(result.stdout)["config"]
    assert config["status"] == FAIL and str(bad) in config["detail"] and "num_parallel" in config["detail"]


def test_stale_pid_file_is_a_warning(sollama, isolated):
    from ollama_ops.edges.process import PidRecord, write_pidfile

    write_pidfile(PidRecord(pid=os.getpid(), create_time=1.0, cmdline=["ollama", "serve"]))
    result = sollama("--host", f"127.0.0.1:{free_port()}", "doctor", "--json")
    check = checks_of(result.stdout)["pid file"]
    assert check["status"] == WARN and "stale" in check["detail"] and "sollama stop" in check["fix"]


def test_all_interfaces_bind_warns_about_exposure(sollama):
    result = sollama("--host", f"0.0.0.0:{free_port()}", "doctor")
    assert "! warn exposure" in result.stdout
    assert "fix: bind 127.0.0.1" in result.stdout
