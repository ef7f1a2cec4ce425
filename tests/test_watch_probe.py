"""`services.watch.deep_probe` names what went wrong as the watchdog decides on it (core.watchdog.ProbeResult):
unreachable (nothing listens), timeout (a stall, scripted on the protocol stub), error (an error answer)."""

from __future__ import annotations

from ollama_ops.services.watch import deep_probe
from tests.conftest import free_port


def test_deep_probe_ok_then_each_failure_of_the_generation(stub):
    ok, model = deep_probe(stub.url, None, timeout=10)
    assert (ok.ok, ok.kind, model) == (True, "ok", "stub-model:latest")
    stub.configure(status=500, error="stub says no")
    error, _ = deep_probe(stub.url, None, timeout=10)
    assert (error.ok, error.kind) == (False, "error") and "stub says no" in error.detail
    stub.configure(status=None, error=None, stall_after=0)
    stalled, _ = deep_probe(stub.url, "stub-model", timeout=0.5)
    assert (stalled.ok, stalled.kind) == (False, "timeout")


def test_deep_probe_of_a_closed_port_is_unreachable():
    result, model = deep_probe(f"http://127.0.0.1:{free_port()}", "m", timeout=2)
    assert (result.ok, result.kind, model) == (False, "unreachable", "m")
