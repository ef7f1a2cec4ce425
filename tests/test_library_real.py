"""The public library against the real `ollama serve` with SmolLM2: generate/chat/embed, sync and async,
streamed and not; the examples of docs/library.md, executed; five concurrent `ensure_running` → one daemon."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import psutil
import pytest

from ollama_ops import AsyncClient, Client, FinalChunk, TextChunk
from ollama_ops.client.resilience import CircuitBreaker
from ollama_ops.errors import ModelNotFound
from tests.conftest import ROOT, free_port

SHORT = {"num_predict": 8, "seed": 1, "temperature": 0}


def test_sync_generate_chat_embed(ollama):
    with Client(ollama.host, breaker=CircuitBreaker()) as c:
        assert c.describe().source == "argument" and c.base_url == ollama.url
        result = c.generate(ollama.model, "Say hi", options=SHORT)
        assert result.text.strip() and result.timings.eval_count > 0 and result.done_reason in ("stop", "length")
        events = list(c.generate(ollama.model, "Say hi", stream=True, options=SHORT))
        assert isinstance(events[-1], FinalChunk) and all(isinstance(e, TextChunk) for e in events[:-1])
        assert "".join(e.text for e in events) == result.text  # same seed, same text, streamed or not
        chat = c.chat(ollama.model, [{"role": "user", "content": "Hi"}], options=SHORT)
        streamed = list(c.chat(ollama.model, [{"role": "user", "content": "Hi"}], stream=True, options=SHORT))
        assert chat.text.strip() and "".join(e.text for e in streamed) == chat.text
        vectors = c.embed(ollama.model, ["a", "b"])
        assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 8 and vectors[0] != vectors[1]
        assert len(c.embed(ollama.model, "one")) == 1
        with pytest.raises(ModelNotFound):
            c.generate("no-such-model:1b", "x")


def test_async_generate_chat_embed(ollama):
    async def main() -> tuple:
        async with AsyncClient(ollama.host, max_concurrency=2, breaker=CircuitBreaker()) as c:
            result = await c.generate(ollama.model, "Say hi", options=SHORT)
            streamed = [e async for e in await c.generate(ollama.model, "Say hi", stream=True, options=SHORT)]
            chats = await asyncio.gather(*(c.chat(ollama.model, [{"role": "user", "content": "Hi"}], options=SHORT)
                                           for _ in range(3)))
            chat_stream = [e async for e in await c.chat(ollama.model, [{"role": "user", "content": "Hi"}],
                                                         stream=True, options=SHORT)]
            vectors = await c.embed(ollama.model, ["a", "b"])
            return result, streamed, chats, chat_stream, vectors, await c.version()

    result, streamed, chats, chat_stream, vectors, version = asyncio.run(main())
    assert result.text.strip() and "".join(e.text for e in streamed) == result.text
    assert isinstance(streamed[-1], FinalChunk) and streamed[-1].timings.eval_count > 0
    assert len({c.text for c in chats}) == 1 and chats[0].text.strip()
    assert "".join(e.text for e in chat_stream) == chats[0].text
    assert len(vectors) == 2 and len(vectors[0]) > 8
    assert version


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_docs_examples_run_against_the_daemon(ollama, isolated):
    blocks = _python_blocks((ROOT / "docs" / "library.md").read_text())
    assert len(blocks) >= 5
    env = {**os.environ, "OLLAMA_HOST": ollama.host, "SOLLAMA_HOME": str(isolated)}
    outputs = []
    for i, block in enumerate(blocks):
        done = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=300,
                              cwd=ROOT)
        assert done.returncode == 0, f"docs/library.md example {i + 1} failed:\n{block}\n{done.stderr[-2000:]}"
        outputs.append(done.stdout.strip())
    assert outputs[1] == "OLLAMA_HOST"  # ensure_running() found the daemon answering and started nothing


ENSURE = """
import json, sys
from ollama_ops import ensure_running
r = ensure_running(90, host=sys.argv[1])
print(json.dumps({"status": r.status, "pid": r.pid}))
"""


def _serve_pids(binary: str, port: int) -> list[int]:
    """`ollama serve` processes whose environment points them at this port."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.info["cmdline"][:2] == [binary, "serve"] and \
                    proc.environ().get("OLLAMA_HOST", "").endswith(f":{port}"):
                found.append(proc.pid)
        except (psutil.Error, TypeError):
            continue
    return found


def test_five_concurrent_ensure_running_start_one_daemon(ollama, isolated, tmp_path):
    from ollama_ops.config import load_settings
    from ollama_ops.services.lifecycle import stop_server

    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {**os.environ, "SOLLAMA_HOME": str(isolated), "SOLLAMA_OLLAMA_BIN": ollama.binary,
           "SOLLAMA_SERVER_MODELS_DIR": str(tmp_path / "models")}
    procs = [subprocess.Popen([sys.executable, "-c", ENSURE, host], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(5)]
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err[-2000:]
            outputs.append(out.strip())
        results = [json.loads(o) for o in outputs]
        assert [r["status"] for r in results].count("started") == 1
        assert {r["status"] for r in results} <= {"started", "already-running", "running"}
        started_pid = next(r["pid"] for r in results if r["status"] == "started")
        assert {r["pid"] for r in results if r["pid"] is not None} == {started_pid}
        assert _serve_pids(ollama.binary, port) == [started_pid]
        again = subprocess.run([sys.executable, "-c", ENSURE, host], env=env, capture_output=True, text=True,
                               timeout=60, cwd=ROOT)
        assert json.loads(again.stdout)["status"] == "running"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        stopped = stop_server(load_settings(flags={"server.host": host}), timeout=10)  # the verified pid only
    assert stopped.status == "stopped" and stopped.pid == started_pid
    assert _serve_pids(ollama.binary, port) == []
