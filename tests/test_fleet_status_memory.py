"""`sollama status --fleet` shows free memory for the host whose daemon sollama manages (started by `sollama
start` on this machine: verified pid record) and for no other host."""

from __future__ import annotations

import json

import httpx
import psutil
import pytest

from ollama_ops.core.units import format_bytes
from tests.conftest import TEST_MODEL
from tests.fleet_helpers import upstreams
from tests.lifecycle_helpers import real_daemon_host
from tests.stub_ollama import StubOllama


def test_hosts_sollama_does_not_manage_show_no_memory(isolated, sollama, monkeypatch):
    with StubOllama(models=("m:1",), loaded=("m:1",)) as a:
        monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", upstreams((a.url, 2), ("http://127.0.0.1:9", 1)))
        result = sollama("status", "--fleet", "--json")
        assert result.exit_code == 7, result.output  # one of two down
        hosts = json.loads(result.stdout)["hosts"]
        assert [(h["up"], h["managed"], h["memory"]) for h in hosts] == [(True, False, None), (False, False, None)]
        text = sollama("status", "--fleet")
        assert "FREE MEM" in text.stdout


@pytest.fixture
def host(monkeypatch, tmp_path, request):
    yield from real_daemon_host(monkeypatch, tmp_path, request)


@pytest.mark.ollama
def test_the_managed_host_shows_its_free_memory(isolated, sollama, host, monkeypatch):
    started = sollama("start", "--json")
    assert started.exit_code == 0, started.output
    url = f"http://{host}"
    assert httpx.post(url + "/api/generate", json={"model": TEST_MODEL, "prompt": "hi", "stream": False,
                                                   "options": {"num_predict": 1}}, timeout=120).status_code == 200
    loaded = httpx.get(url + "/api/ps", timeout=10).json()["models"]
    assert loaded, "the model is loaded"
    with StubOllama(models=("m:1",)) as other:
        monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", upstreams((url, 1), (other.url, 1)))
        result = sollama("status", "--fleet", "--json")
        assert result.exit_code == 0, result.output
        mine, theirs = json.loads(result.stdout)["hosts"]
        local = json.loads(sollama("status", "--json").stdout)["memory"]  # what `sollama status` says
        text = sollama("status", "--fleet")
    assert (mine["url"], mine["managed"], theirs["managed"], theirs["memory"]) == (url, True, False, None)
    memory = mine["memory"]
    assert memory["used"] == sum(m["size"] for m in loaded) > 0
    assert memory["budget"] == local["budget"] and memory["total_ram"] == psutil.virtual_memory().total
    assert memory["free"] == memory["budget"] - memory["used"] > 0
    assert 0 < memory["available_ram"] <= memory["total_ram"]
    assert text.exit_code == 0 and "FREE MEM" in text.stdout
    assert format_bytes(memory["free"]) in text.stdout.splitlines()[2], text.stdout  # the managed host's row
