"""`sollama models` through the CLI against the protocol stub, and the import service over a recording transport.

The real-daemon tests are in tests/test_models_real.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ollama_ops.client.sync import OllamaClient
from ollama_ops.errors import UsageError
from ollama_ops.services import models as svc
from tests.conftest import free_port


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """A small file with the GGUF magic (enough for every check before the server parses it)."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


def _ok(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output


# -- list / show ---------------------------------------------------------------------------------------------

def test_list_json_reports_name_family_and_age(sollama, stub):
    result = sollama("--host", stub.host, "models", "list", "--json")
    _ok(result)
    data = json.loads(result.stdout)
    [model] = data["models"]
    assert model["name"] == "stub-model:latest"
    assert model["family"] == "llama"
    assert model["parameter_size"] == "135M"
    assert model["quantization"] == "Q8_0"
    assert model["size"] == 145_000_000
    assert model["modified"] == "2025-01-01T00:00:00Z"
    assert model["modified_ago"].endswith("days ago")


def test_list_table_shows_columns_and_size(sollama, stub):
    result = sollama("--host", stub.host, "models", "list")
    _ok(result)
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "SIZE", "FAMILY", "PARAMS", "QUANT", "MODIFIED"]
    assert row.split()[:6] == ["stub-model:latest", "138.3", "MiB", "llama", "135M", "Q8_0"]
    assert result.stderr == ""


def test_list_empty_says_how_to_add_one(sollama, stub):
    stub.models.clear()
    result = sollama("--host", stub.host, "models", "list")
    _ok(result)
    assert "no models installed" in result.stdout
    assert json.loads(sollama("--host", stub.host, "models", "list", "--json").stdout) == {"models": []}


def test_show_json_has_layer_and_head_counts(sollama, stub):
    result = sollama("--host", stub.host, "models", "show", "stub-model", "--json")
    _ok(result)
    data = json.loads(result.stdout)
    assert (data["block_count"], data["head_count"], data["head_count_kv"]) == (30, 9, 3)
    assert data["context_length"] == 8192
    assert data["embedding_length"] == 576
    assert data["architecture"] == "llama"
    assert data["parameters"] == {"stop": "<|im_end|>"}
    assert data["capabilities"] == ["completion"]


def test_show_table_prints_template_verbatim(sollama, stub):
    result = sollama("--host", stub.host, "models", "show", "stub-model")
    _ok(result)
    assert "layers (block_count)  30" in result.stdout
    assert "{{ .Prompt }}" in result.stdout  # braces and brackets are not taken as markup


def test_show_unknown_model_lists_installed_ones(sollama, stub):
    result = sollama("--host", stub.host, "models", "show", "stub-modl")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == "error: model 'stub-modl' not found; installed: stub-model:latest"


# -- rm / unload ---------------------------------------------------------------------------------------------

def test_rm_without_yes_refuses_when_stdin_is_not_a_terminal(sollama, stub):
    result = sollama("--host", stub.host, "models", "rm", "stub-model")
    assert result.exit_code == 2, result.output
    assert "--yes" in result.stderr
    assert stub.models == ["stub-model:latest"]
    assert not any(method == "DELETE" for method, _, _ in stub.requests)


def test_rm_yes_removes_the_model(sollama, stub):
    result = sollama("--host", stub.host, "models", "rm", "stub-model", "--yes", "--json")
    _ok(result)
    assert json.loads(result.stdout) == {"name": "stub-model:latest", "removed": True}  # the installed name
    assert json.loads(sollama("--host", stub.host, "models", "list", "--json").stdout) == {"models": []}


def test_rm_unknown_model_is_exit_1_listing_installed(sollama, stub):
    result = sollama("--host", stub.host, "models", "rm", "nope:1b", "--yes")
    assert result.exit_code == 1, result.output
    assert "model 'nope:1b' not found; installed: stub-model:latest" in result.stderr


def test_remove_service_asks_and_keeps_on_no(stub):
    asked: list[str] = []
    with OllamaClient(stub.url) as client:
        kept = svc.remove_model(client, "stub-model", confirm=lambda name: asked.append(name) or False)
    assert asked == ["stub-model:latest"]
    assert kept == svc.RemoveResult("stub-model:latest", removed=False)
    assert stub.models == ["stub-model:latest"]


def test_unload_all_empties_ps(sollama, stub):
    stub.loaded.add("stub-model:latest")
    result = sollama("--host", stub.host, "models", "unload", "--all", "--json")
    _ok(result)
    assert json.loads(result.stdout) == {"unloaded": ["stub-model:latest"], "still_loaded": []}
    assert stub.loaded == set()
    generate = [body for method, path, body in stub.requests if path == "/api/generate"]
    assert generate == [{"model": "stub-model:latest", "prompt": "", "keep_alive": 0, "stream": False}]


@pytest.mark.parametrize("args", [[], ["stub-model", "--all"]], ids=["neither", "both"])
def test_unload_needs_exactly_one_target(sollama, stub, args):
    result = sollama("--host", stub.host, "models", "unload", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1


# -- import: the failures ------------------------------------------------------------------------------------

def test_import_not_gguf_is_usage_error(sollama, stub, tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 a zip, not a model")
    result = sollama("--host", stub.host, "models", "import", str(bogus), "--name", "x")
    assert result.exit_code == 2, result.output
    assert "is not a GGUF file" in result.stderr and "b'PK\\x03\\x04'" in result.stderr
    assert stub.requests == []  # rejected before talking to the server


def test_import_missing_file_is_usage_error(sollama, stub, tmp_path):
    result = sollama("--host", stub.host, "models", "import", str(tmp_path / "absent.gguf"), "--name", "x")
    assert result.exit_code == 2, result.output
    assert "no such file" in result.stderr


def test_import_name_collision_is_exit_1(sollama, stub, gguf):
    result = sollama("--host", stub.host, "models", "import", str(gguf), "--name", "stub-model")
    assert result.exit_code == 1, result.output
    assert "a model named 'stub-model' already exists" in result.stderr and "--force" in result.stderr


def test_import_digest_mismatch_is_exit_1(sollama, stub, gguf):
    result = sollama("--host", stub.host, "models", "import", str(gguf), "--name", "fresh", "--sha256", "0" * 64)
    assert result.exit_code == 1, result.output
    actual = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert f"digest mismatch for {gguf}: expected {'0' * 64}, got sha256:{actual}" in result.stderr
    assert not any(path.startswith("/api/blobs") for _, path, _ in stub.requests)


def test_import_server_down_is_exit_4_one_line(sollama, gguf):
    result = sollama("--host", f"127.0.0.1:{free_port()}", "models", "import", str(gguf), "--name", "x")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: cannot connect to Ollama at http://127.0.0.1:")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra, message", [
    (["--param", "temprature=0.2"], "unknown option 'temprature'; did you mean 'temperature'?"),
    (["--param", "num_ctx=big"], "option 'num_ctx' must be int"),
    (["--param", "novalue"], "expected --option KEY=VALUE"),
    (["--template", "a", "--template-file", "t.txt"], "give --template or --template-file, not both"),
    (["--template-file", "/nonexistent/t.txt"], "cannot read --template-file"),
])
def test_import_bad_options_are_usage_errors(sollama, stub, gguf, extra, message):
    result = sollama("--host", stub.host, "models", "import", str(gguf), "--name", "x", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


# -- import: the whole flow over a recording transport ---------------------------------------------------------

class FakeOllamaBlobs:
    """The three endpoints an import uses, answered like Ollama does; records what it received."""

    def __init__(self, have_blob: bool) -> None:
        self.have_blob = have_blob
        self.uploaded = b""
        self.create_body: dict | None = None
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": []})
        if request.method == "HEAD" and request.url.path.startswith("/api/blobs/"):
            return httpx.Response(200 if self.have_blob else 404)
        if request.method == "POST" and request.url.path.startswith("/api/blobs/"):
            self.uploaded = request.read()
            return httpx.Response(201)
        if request.url.path == "/api/create":
            self.create_body = json.loads(request.read())
            lines = [{"status": "parsing GGUF"}, {"status": "writing manifest"}, {"status": "success"}]
            return httpx.Response(200, content="".join(json.dumps(x) + "\n" for x in lines).encode())
        return httpx.Response(404, json={"error": "not here"})


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, label: str, total: int | None) -> None:
        self.events.append(("start", label, total))

    def advance(self, amount: int) -> None:
        self.events.append(("advance", amount))

    def status(self, text: str) -> None:
        self.events.append(("status", text))


def test_import_uploads_a_new_blob_with_progress(gguf):
    server = FakeOllamaBlobs(have_blob=False)
    progress = RecordingProgress()
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    with OllamaClient("http://ollama.test", transport=httpx.MockTransport(server)) as client:
        result = svc.import_gguf(client, gguf, "mine:1", template="{{ .Prompt }}", system="Be brief.",
                                 parameters=svc.parse_params(["temperature=0.2", "stop=<|im_end|>"]),
                                 progress=progress, expected_digest=digest.removeprefix("sha256:"))
    assert result.uploaded is True
    assert result.digest == digest and result.size == gguf.stat().st_size
    assert result.statuses == ["parsing GGUF", "writing manifest", "success"]
    assert server.uploaded == gguf.read_bytes()
    assert server.calls == ["GET /api/tags", f"HEAD /api/blobs/{digest}", f"POST /api/blobs/{digest}",
                            "POST /api/create"]
    assert server.create_body == {"model": "mine:1", "files": {"tiny.gguf": digest}, "template": "{{ .Prompt }}",
                                  "system": "Be brief.", "parameters": {"temperature": 0.2, "stop": ["<|im_end|>"]},
                                  "stream": True}
    size = gguf.stat().st_size
    starts = [e for e in progress.events if e[0] == "start"]
    assert starts == [("start", "sha256 tiny.gguf", size), ("start", "upload tiny.gguf", size),
                      ("start", "create mine:1", None)]
    hashed_then_uploaded = [e[1] for e in progress.events if e[0] == "advance"]
    assert sum(hashed_then_uploaded) == 2 * size


def test_import_skips_upload_when_the_server_has_the_blob(gguf):
    server = FakeOllamaBlobs(have_blob=True)
    with OllamaClient("http://ollama.test", transport=httpx.MockTransport(server)) as client:
        result = svc.import_gguf(client, gguf, "mine")
    assert result.uploaded is False
    assert server.uploaded == b""
    assert not any(call.startswith("POST /api/blobs") for call in server.calls)


def test_import_without_success_status_is_an_error(gguf):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": []})
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(200, content=b'{"status":"parsing GGUF"}\n{"error":"unsupported architecture"}\n')

    with OllamaClient("http://ollama.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(svc.SollamaError, match="create failed: unsupported architecture") as info:
            svc.import_gguf(client, gguf, "mine")
    assert info.value.exit_code == 1


# -- pure helpers -----------------------------------------------------------------------------------------------

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("modified, expected", [
    ("2025-01-10T11:59:30Z", "just now"),
    ("2025-01-10T11:59:00Z", "1 minute ago"),
    ("2025-01-10T09:00:00+00:00", "3 hours ago"),
    ("2025-01-09T12:00:00.123456789Z", "23 hours ago"),
    ("2025-01-07T12:00:00Z", "3 days ago"),
    ("2025-01-10T04:00:00-08:00", "just now"),
    ("2025-01-09T12:00:00", "1 day ago"),  # no zone: taken as UTC
    ("2025-02-01T00:00:00Z", "just now"),  # clock skew: never negative
    ("yesterday", "yesterday"),
    ("", ""),
])
def test_modified_age(modified, expected):
    assert svc.modified_age(modified, NOW) == expected


def test_parameters_text_repeated_keys_become_lists():
    text = 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"\n' \
           'temperature                    0.2\nnum_ctx 4096'
    assert svc._parse_parameters(text) == {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": "0.2",
                                            "num_ctx": "4096"}


def test_parse_params_types_by_ollama_schema():
    assert svc.parse_params(["num_ctx=4096", "top_p=1", "use_mmap=false", "stop=a", "stop=b"]) == {
        "num_ctx": 4096, "top_p": 1.0, "use_mmap": False, "stop": ["a", "b"]}
    with pytest.raises(UsageError):
        svc.parse_params(["seed=1.5"])


def test_closest_names_orders_by_similarity():
    assert svc.closest_names("llama3", ["qwen2:7b", "llama3.2:1b", "llama2:7b"]) == [
        "llama3.2:1b", "llama2:7b", "qwen2:7b"]


class StickyClient:
    """A server whose model stays in /api/ps after the unload request (a request still running on it)."""

    def __init__(self, gone_after: int | None) -> None:
        self.ps_calls = 0
        self.gone_after = gone_after
        self.unloaded: list[str] = []

    def ps(self) -> list[dict]:
        self.ps_calls += 1
        if self.gone_after is not None and self.ps_calls > self.gone_after:
            return []
        return [{"name": "m:latest", "model": "m:latest"}]

    def unload(self, name: str) -> dict:
        self.unloaded.append(name)
        return {"done_reason": "unload"}


def test_unload_waits_until_ps_no_longer_lists_the_model():
    client, now = StickyClient(gone_after=4), [0.0]
    result = svc.unload_models(client, "m", clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert result == svc.UnloadResult(unloaded=["m"], still_loaded=[])
    assert client.ps_calls == 5 and now[0] == pytest.approx(0.4)


def test_unload_reports_a_model_still_loaded_after_the_wait():
    client, now = StickyClient(gone_after=None), [0.0]
    result = svc.unload_models(client, all_models=True, wait=2.0, clock=lambda: now[0],
                               sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert client.unloaded == ["m:latest"]
    assert result == svc.UnloadResult(unloaded=[], still_loaded=["m:latest"])
    assert now[0] == pytest.approx(2.0)


# -- names match as Ollama matches them (core/names.py), and are checked before any work --------------------------

@pytest.mark.parametrize("spelling", ["stub-model", "STUB-Model", "stub-model:latest", "Stub-Model:LATEST",
                                      "library/stub-model", "registry.ollama.ai/library/stub-model:latest",
                                      "https://registry.ollama.ai/library/stub-model:latest"])
def test_rm_matches_every_spelling_of_the_installed_name(sollama, stub, spelling):
    result = sollama("--host", stub.host, "models", "rm", spelling, "--yes", "--json")
    _ok(result)
    assert json.loads(result.stdout) == {"name": "stub-model:latest", "removed": True}
    assert [(m, p, b) for m, p, b in stub.requests if m == "DELETE"] == \
        [("DELETE", "/api/delete", {"model": "stub-model:latest"})]
    assert stub.models == []


@pytest.mark.parametrize("name, problem", [
    ("bad name", "its model may not contain ' '"), ("me/-y", "its model must start with a letter"),
    ("x:", "its tag must be 1 to 80"), ("/m", "its namespace must be 1 to 80"),
    ("a/b.c/m", "its namespace may not contain '.'"), (" x", "whitespace"),
    ("m" * 81, "its model must be 1 to 80 characters"), ("x:" + "t" * 81, "its tag must be 1 to 80"),
])
def test_rm_and_import_refuse_an_invalid_name_before_any_work(sollama, stub, tmp_path, name, problem):
    result = sollama("--host", stub.host, "models", "rm", name, "--yes")
    assert result.exit_code == 2, result.output
    assert problem in result.stderr and "invalid model name" in result.stderr
    assert stub.request_count == 0
    missing = tmp_path / "absent.gguf"  # the name is checked first: no "no such file", no hashing
    result = sollama("--host", stub.host, "models", "import", str(missing), "--name", name)
    assert result.exit_code == 2, result.output
    assert "invalid model name" in result.stderr and "no such file" not in result.stderr
    assert stub.request_count == 0
