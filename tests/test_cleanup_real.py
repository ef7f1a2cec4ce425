"""`sollama cleanup --stop` against our own real daemon with SmolLM2 loaded: unload, then stop."""

from __future__ import annotations

import json

import httpx
import pytest

from ollama_ops.edges import process as pf
from tests import conftest
from tests.lifecycle_helpers import nothing_listens, real_daemon_host

pytestmark = pytest.mark.ollama


@pytest.fixture
def host(monkeypatch, tmp_path, request):
    yield from real_daemon_host(monkeypatch, tmp_path, request)


def test_cleanup_unloads_models_and_stops_the_daemon(sollama, host):
    assert sollama("start").exit_code == 0
    url = f"http://{host}"
    conftest.ensure_test_model(url)
    loaded = httpx.post(f"{url}/api/generate", json={"model": conftest.TEST_MODEL, "prompt": "",
                                                      "keep_alive": "10m", "stream": False}, timeout=120)
    assert loaded.status_code == 200, loaded.text
    assert [m["name"] for m in httpx.get(f"{url}/api/ps", timeout=5).json()["models"]] == [conftest.TEST_MODEL]
    pid = pf.read_pidfile().pid

    plan = sollama("cleanup", "--stop", "--dry-run", "--no-orphans")
    assert plan.exit_code == 0, plan.output
    assert conftest.TEST_MODEL in plan.stdout and f"pid {pid}" in plan.stdout

    result = sollama("cleanup", "--stop", "--yes", "--no-orphans", "--json")
    assert result.exit_code == 0, result.output
    outcomes = {o["name"]: o for o in json.loads(result.stdout)["report"]["outcomes"]}
    assert outcomes["unload"]["ok"] and outcomes["unload"]["count"] == 1 and outcomes["unload"]["bytes"] > 50e6
    assert outcomes["stop"]["ok"] and f"pid {pid}" in outcomes["stop"]["freed"]
    assert nothing_listens(host) and not pf.pidfile_path().exists()
