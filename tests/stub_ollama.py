"""Scriptable Ollama protocol stub: a tiny raw-asyncio HTTP/1.1 server on loopback.

Real Ollama cannot misbehave on demand; this stub can (status codes, mid-stream
errors, malformed lines, abrupt disconnects, stalls) and it is fast enough
(thousands of streamed req/s on one core) never to be the bottleneck of a load
generator.  It mimics the wire format of Ollama v0.23.4 for the endpoints that
sollama uses.  Stdlib plus sollama's own ``ollama_ops.edges.stamped`` (stdlib only itself); importable
without pytest.

In-process::

    with StubOllama(Script(tokens=4, token_delay=0.01)) as stub:
        httpx.post(stub.url + "/api/generate", json={"model": "stub-model", "prompt": "hi"})
        stub.configure(status=503)          # next requests get "server busy"

As a separate process (prints ``READY <port>`` once listening; SIGINT/SIGTERM stop it)::

    python tests/stub_ollama.py --port 0 --tokens 16 --first-token-delay 0.05 --token-delay 0.01

Timing fidelity: a paced stream is scheduled from the moment the request's last bytes reached the stub: the
kernel's receive timestamp of those bytes (connections are ``StampedTransport``s), not the moment the stub's loop
got round to reading them, which at concurrency 32 is up to a millisecond later; and every paced write records how
late it went out against that schedule, on the system-wide monotonic clock (the same clock as
``time.perf_counter`` in any process on Linux, so a client can line its own timestamps up with the stub's). ``GET
/api/_stub/stats`` returns those records (``DELETE`` clears them), ``stub.stats()`` does the same in-process, and
``--report-lateness`` prints a summary at exit. On Linux the stub's event loop sleeps with microsecond precision
(see ``_PreciseEpollSelector``) instead of asyncio's default millisecond rounding.
"""

import argparse
import asyncio
import collections
import dataclasses
import email.utils
import hashlib
import http
import json
import math
import select
import selectors
import signal
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:
    from ollama_ops.edges.stamped import StampedTransport
except ImportError:  # run as a script outside the installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ollama_ops.edges.stamped import StampedTransport

BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"
RUN_ERROR = "an error was encountered while running the model: stub fault"
JSON_CT, TEXT_CT = "application/json; charset=utf-8", "text/plain; charset=utf-8"
_CLOSE, _STALL = object(), object()  # driver actions besides bytes (write) and float (sleep)


class _Stalled:
    """`_Conn.task` of a stalled response: nothing to cancel, the connection just stays open."""

    def cancel(self):
        pass


_STALLED = _Stalled()
_END = b"0\r\n\r\n"
_MAX_HEAD, _MAX_BODY = 64 * 1024, 64 * 1024 * 1024
_date_cache = [0, ""]
_STATS_KEEP = 100_000  # per-request timing records / paced writes kept (oldest dropped)


class _PreciseEpollSelector(selectors.EpollSelector):
    """epoll, but timeouts to the microsecond: asyncio's default selector rounds every timer wait UP to the
    next whole millisecond (``epoll_wait`` takes ms), so a scripted 80 ms sleep ended 0-1 ms late (+0.5 ms
    median).  A wait with a sub-millisecond part first blocks in ``select()`` (microsecond ``timeval``) on the
    epoll fd itself, which is readable as soon as any registered fd is ready, then polls without waiting.

    With ``spin`` > 0 (seconds; the separate-process stub's ``--spin-us``) the last ``spin`` of every timed wait
    is spent polling instead of sleeping, so a timer fires on a core that is already awake: an idle vCPU takes
    a few hundred microseconds to wake, which made a first token scripted at 80 ms go out ~0.5 ms late.  Not for
    the in-process stub, whose spinning would take the GIL from the client under test."""

    def __init__(self, spin: float = 0.0):
        super().__init__()
        self._spin = spin

    def select(self, timeout=None):
        if self._spin and timeout is not None and timeout > 0:
            deadline = time.monotonic() + timeout
            if timeout > self._spin and select.select([self.fileno()], [], [], timeout - self._spin)[0]:
                return super().select(0)
            while True:
                events = super().select(0)
                if events or time.monotonic() >= deadline:
                    return events
        if timeout is not None and timeout > 0 and timeout * 1e3 != math.ceil(timeout * 1e3):
            select.select([self.fileno()], [], [], timeout)
            timeout = 0
        return super().select(timeout)


def _new_loop(spin: float = 0.0) -> asyncio.AbstractEventLoop:
    """The stub's event loop (call it in the thread that runs the loop)."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    try:  # this thread's timer slack: 50 us by default, and 0.1% of the wait (80 us for 80 ms) for select()
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        pass
    return asyncio.SelectorEventLoop(_PreciseEpollSelector(spin))


@dataclasses.dataclass
class Script:
    """How /api/generate and /api/chat behave; snapshotted at the start of each request.

    ``*_after`` fault indices count token chunks already sent (0 = before the first
    token, ``tokens`` = after the last token, before the final ``done`` chunk).
    ``token_text`` may be a list; it is cycled for ``tokens`` chunks.
    ``status`` makes inference endpoints answer that status with ``{"error": error}``
    (default text: Ollama's "server busy" for 503); with ``status_every`` N only every
    Nth generate/chat request since the last ``configure`` does.  ``malformed_after`` injects
    ``malformed_line`` and then continues the stream normally.  With ``stream:false``
    faults apply to the single response (disconnect/stall/500 error/malformed body).
    """

    tokens: int = 16
    token_text: str | list[str] = "tok "
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    status: int | None = None
    status_every: int = 1
    error: str | None = None
    disconnect_after: int | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    malformed_line: str = "{not json"
    stall_after: int | None = None
    omit_eval_count: bool = False
    retry_after: str | None = None  # a Retry-After header on ``status`` answers
    status_times: int | None = None  # ``status`` for only the first N inference requests of this script
    count_words: bool = False  # prompt tokens = words + 5 (a "template") instead of characters / 4
    ignore_max_tokens: bool = False  # /v1: answer `tokens` chunks whatever max_tokens says
    omit_usage: bool = False  # /v1: no usage object even when include_usage is asked
    omit_done: bool = False  # /v1: end the stream after the usage event without "data: [DONE]"

    def text(self, i: int) -> str:
        t = self.token_text
        return t if isinstance(t, str) else t[i % len(t)]


def _date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date_cache[1]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _head(status: int, ctype: str, keep: bool, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    close = "" if keep else "Connection: close\r\n"
    return (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: {ctype}\r\n"
        f"Date: {_date()}\r\n{extra}{size}\r\n{close}\r\n"
    ).encode()


def _response(status: int, body: bytes, keep: bool, ctype: str = JSON_CT, head: bool = False,
              extra: str = "") -> bytes:
    return _head(status, ctype, keep, len(body), extra) + (b"" if head else body)


def _json(status: int, obj, keep: bool, extra: str = "") -> bytes:
    return _response(status, json.dumps(obj, separators=(",", ":")).encode(), keep, extra=extra)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _prompt_tokens(s: "Script", text: str) -> int:
    """The stub's prompt token count: words + 5 with ``count_words``, else characters / 4."""
    return len(text.split()) + 5 if s.count_words else max(1, len(text) // 4)


def _norm(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _is_zero(keep_alive) -> bool:
    return keep_alive is not None and str(keep_alive).strip() in ("0", "0s", "0m", "0h", "0.0")


class _Conn(asyncio.Protocol):
    """One client connection: parses pipelined/keep-alive requests, drives responses."""

    def __init__(self, stub: "StubOllama"):
        self.stub, self.buf, self.t, self.task = stub, bytearray(), None, None
        self.t_rx = 0  # monotonic ns when the bytes completing the current request arrived (kernel stamp)
        self.rid = None  # the request's X-Request-Id header, for the timing records

    def connection_made(self, transport):
        self.t = transport
        self.stub._conns.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets TCP_NODELAY on accepted sockets; counted to prove it
            self.stub._nodelay[bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))] += 1

    def connection_lost(self, exc):
        self.stub._conns.discard(self)
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data):
        self.t_rx = self.t.rx_ns
        self.buf += data
        if self.task is None:
            self._process()

    def _fail(self, status: int):
        self.buf.clear()
        self.t.write(_response(status, http.HTTPStatus(status).phrase.encode(), False, TEXT_CT))
        self.t.close()

    def _process(self):
        while self.task is None and not self.t.is_closing():
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return self._fail(431) if len(self.buf) > _MAX_HEAD else None
            try:
                lines = self.buf[:end].decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ")
                hdrs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                clen = int(hdrs.get("content-length") or 0)
            except ValueError:
                return self._fail(400)
            if "transfer-encoding" in hdrs or not 0 <= clen <= _MAX_BODY:
                return self._fail(411 if "transfer-encoding" in hdrs else 413)
            if len(self.buf) < end + 4 + clen:
                return
            body = bytes(self.buf[end + 4 : end + 4 + clen])
            del self.buf[: end + 4 + clen]
            conn = hdrs.get("connection", "").lower()
            keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
            self.rid = hdrs.get("x-request-id")
            self.stub.last_headers = hdrs
            self.stub._dispatch(self, method, target.split("?", 1)[0], body, keep)

    def run(self, gen, keep: bool):
        """Drive a response generator synchronously while it needs no waiting.

        bytes are written, a float > 0 is a sleep, _CLOSE closes abruptly (after
        flushing), _STALL keeps the connection open; the first wait hands the rest
        of the generator to timer callbacks (``_drive``), so zero-delay responses go out in one write.
        """
        out = bytearray()
        for act in gen:
            if act.__class__ is bytes:
                out += act
            elif act is _CLOSE or act is _STALL or act > 0:
                self.t.write(out)
                self._drive(gen, act, keep)
                return
        self.t.write(out)
        if not keep:
            self.t.close()

    def _drive(self, gen, act, keep: bool):
        """Carry out actions until the next wait (a timer that calls ``_resume``) or the end of the response.
        Plain timer callbacks rather than a task per response: at concurrency 32 the first tokens of a lockstep
        batch go out one after another, and a task's wake-up costs each of them a few more microseconds."""
        while act is not None:
            if act is _STALL:
                self.task = _STALLED  # until connection_lost/stop
                return
            if act is _CLOSE:
                self.task = None
                self.buf.clear()
                self.t.close()
                return
            if act.__class__ is bytes:
                self.t.write(act)
            elif act > 0:
                self.task = self.stub._loop.call_later(act, self._resume, gen, keep)
                return
            act = next(gen, None)
        self.task = None
        if not keep:
            self.t.close()
        self.t_rx = time.monotonic_ns()  # a pipelined request's schedule starts when the stub turns to it
        self._process()  # pipelined requests that arrived meanwhile

    def _resume(self, gen, keep: bool):
        self._drive(gen, next(gen, None), keep)


class StubOllama:
    """Ollama stub server on 127.0.0.1 in a background thread (context manager).

    Attributes: ``script`` (replace or mutate between tests), ``models`` (names
    served by /api/tags), ``loaded`` (names shown by /api/ps; generate/chat load,
    keep_alive 0 unloads), ``request_count``; ``requests`` is a list copy of the
    last 1000 ``(method, path, json_body)`` tuples (json_body None if absent/invalid).
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        models=("stub-model:latest",),
        loaded=(),
        port: int = 0,
        uvloop: bool = False,
        spin: float = 0.0,
    ):
        self.script = script or Script()
        self.models = [_norm(m) for m in models]
        self.loaded = {_norm(m) for m in loaded}
        self.port, self._want_port, self._uvloop, self._spin = port, port, uvloop, spin
        self.version = "0.0.0-stub"  # what /api/version answers
        self.last_headers: dict[str, str] = {}  # of the last request (names lower-cased)
        self.request_count = 0
        self._inferred = 0  # generate/chat requests since the last configure (for ``status_every``)
        self._requests = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._thread = self._loop = self._stopping = self._error = None
        self._timeline = collections.deque(maxlen=_STATS_KEEP)  # one dict per paced streamed request
        self._late = collections.deque(maxlen=_STATS_KEEP)  # seconds each paced write went out after schedule
        self._nodelay = [0, 0]  # accepted connections without / with TCP_NODELAY
        self._status_served: dict[int, int] = {}  # id(script) -> status answers sent (status_times)
        self._origin, self._rid = 0, None  # of the request being dispatched (the loop is single-threaded)
        self._routes = {
            ("GET", "/api/version"): lambda r, k: _json(200, {"version": self.version}, k),
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("DELETE", "/api/delete"): self._delete,
            ("POST", "/api/generate"): lambda r, k: self._infer(r, k, False),
            ("POST", "/api/chat"): lambda r, k: self._infer(r, k, True),
            ("POST", "/v1/chat/completions"): lambda r, k: self._openai(r, k, True),
            ("POST", "/v1/completions"): lambda r, k: self._openai(r, k, False),
            ("GET", "/v1/models"): self._v1_models,
        }

    # -- public API -------------------------------------------------------------
    url = property(lambda self: f"http://127.0.0.1:{self.port}")
    host = property(lambda self: f"127.0.0.1:{self.port}")

    @property
    def requests(self) -> list[tuple[str, str, object]]:
        with self._lock:
            return list(self._requests)

    def configure(self, **kw) -> Script:
        """Replace the script with a copy of the current one updated with ``kw``."""
        self._inferred = 0
        self.script = dataclasses.replace(self.script, **kw)
        return self.script

    def reset(self, script: Script | None = None):
        """Back to a default (or given) script; clears the request record and counter."""
        self.script = script or Script()
        self._inferred = 0
        with self._lock:
            self._requests.clear()
            self.request_count = 0

    def stats(self, clear: bool = False) -> dict:
        """The stub's own timing record (monotonic clock, seconds) since start or the last clear.

        ``requests``: one entry per paced streamed generate/chat request: ``id`` (its X-Request-Id header or
        None), ``rx`` (when its last bytes arrived = time zero of its script), ``first`` / ``last`` (when the
        first / last token chunk was handed to the socket), ``tokens``.  ``lateness``: median/p90/max seconds
        that paced writes went out after their scheduled time, over ``writes`` writes.  ``nodelay``: accepted
        connections with / without TCP_NODELAY.
        """
        with self._lock:
            reqs, late = list(self._timeline), list(self._late)
            if clear:
                self._timeline.clear()
                self._late.clear()
        late.sort()
        pick = (lambda q: late[min(len(late) - 1, int(q * len(late)))]) if late else (lambda q: None)
        return {
            "requests": reqs,
            "writes": len(late),
            "lateness": {"p50": statistics.median(late) if late else None, "p90": pick(0.9), "max": pick(1.0)},
            "nodelay": {"on": self._nodelay[1], "off": self._nodelay[0]},
        }

    def start(self) -> "StubOllama":
        if self._thread is None:
            ready, self._error = threading.Event(), None
            self._thread = threading.Thread(target=self._main, args=(ready,), name="stub-ollama", daemon=True)
            self._thread.start()
            ready.wait(5)
            if self._error is not None:
                self._thread = None
                raise self._error
        return self

    def stop(self):
        """Close the listener and every connection (ending stalls); join the thread."""
        if self._thread is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._stopping.set)
        except RuntimeError:  # loop already closed
            pass
        self._thread.join(2.5)
        self._thread = None

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    # -- event loop -------------------------------------------------------------
    def _main(self, ready: threading.Event):
        if self._uvloop:
            import uvloop

            self._loop = uvloop.new_event_loop()
        else:
            self._loop = _new_loop(self._spin)
        try:
            self._loop.run_until_complete(self._serve(ready))
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            ready.set()
        finally:
            self._loop.close()

    async def _serve(self, ready: threading.Event):
        self._stopping = asyncio.Event()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._want_port))
        listener.listen(1024)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._loop.add_reader(listener.fileno(), self._accept, listener)
        ready.set()
        await self._stopping.wait()
        self._loop.remove_reader(listener.fileno())
        listener.close()
        for c in list(self._conns):
            c.t.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)

    def _accept(self, listener: socket.socket):
        for _ in range(64):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError:  # out of file descriptors: pause accepting for a moment instead of spinning
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(0.1, self._loop.add_reader, listener.fileno(), self._accept, listener)
                return
            StampedTransport(self._loop, sock, _Conn(self))

    # -- request handling ---------------------------------------------------------
    def _dispatch(self, conn: _Conn, method: str, path: str, body: bytes, keep: bool):
        try:
            req = json.loads(body) if body else None
        except ValueError:
            req = ValueError
        with self._lock:
            self.request_count += 1
            self._requests.append((method, path, None if req is ValueError else req))
        self._origin, self._rid = conn.t_rx, conn.rid
        if path == "/" and method in ("GET", "HEAD"):
            return conn.run([_response(200, b"Ollama is running", keep, TEXT_CT, method == "HEAD")], keep)
        if path == "/api/_stub/stats" and method in ("GET", "DELETE"):
            return conn.run([_json(200, self.stats(clear=method == "DELETE"), keep)], keep)
        route = self._routes.get((method, path))
        if route is None:
            return conn.run([_response(404, b"404 page not found", keep, TEXT_CT)], keep)
        if method != "GET" and not isinstance(req, dict):
            return conn.run([_json(400, {"error": "invalid request body"}, keep)], keep)
        try:
            resp = route(req, keep)
        except Exception as e:  # noqa: BLE001 - a stub bug must not kill the connection loop
            resp = _json(500, {"error": f"stub: {e!r}"}, keep)
        conn.run([resp] if isinstance(resp, bytes) else resp, keep)

    def _find(self, req: dict) -> str | None:
        name = _norm(req.get("model") or req.get("name") or "")
        return name if name in self.models else None

    @staticmethod
    def _details(name: str):
        return (
            hashlib.sha256(name.encode()).hexdigest(),
            {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "135M",
                "quantization_level": "Q8_0",
            },
        )

    def _tags(self, req, keep):
        out = []
        for m in list(self.models):
            digest, details = self._details(m)
            out.append(
                {
                    "name": m,
                    "model": m,
                    "modified_at": "2025-01-01T00:00:00Z",
                    "size": 145_000_000,
                    "digest": digest,
                    "details": details,
                }
            )
        return _json(200, {"models": out}, keep)

    def _v1_models(self, req, keep):
        data = [{"id": m, "object": "model", "created": 1735689600, "owned_by": "library"} for m in self.models]
        return _json(200, {"object": "list", "data": data}, keep)

    def _ps(self, req, keep):
        exp = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out = []
        for m in sorted(self.loaded):
            digest, details = self._details(m)
            out.append(
                {
                    "name": m,
                    "model": m,
                    "size": 250_000_000,
                    "size_vram": 250_000_000,
                    "digest": digest,
                    "details": details,
                    "expires_at": exp,
                    "context_length": 4096,
                }
            )
        return _json(200, {"models": out}, keep)

    def _show(self, req, keep):
        name = self._find(req)
        if name is None:
            return _json(404, {"error": f"model '{req.get('model') or req.get('name')}' not found"}, keep)
        _, details = self._details(name)
        info = {
            "general.architecture": "llama",
            "general.parameter_count": 134515008,
            "llama.context_length": 8192,
            "llama.block_count": 30,
            "llama.attention.head_count": 9,
            "llama.attention.head_count_kv": 3,
            "llama.embedding_length": 576,
        }
        return _json(
            200,
            {
                "license": "",
                "modelfile": f"# Modelfile generated by stub\nFROM {name}\n",
                "parameters": 'stop                           "<|im_end|>"',
                "template": "{{ .Prompt }}",
                "details": details,
                "model_info": info,
                "capabilities": ["completion"],
                "modified_at": "2025-01-01T00:00:00Z",
            },
            keep,
        )

    def _delete(self, req, keep):
        name = self._find(req)
        if name is None:
            return _json(404, {"error": f"model '{req.get('model') or req.get('name')}' not found"}, keep)
        self.models.remove(name)
        self.loaded.discard(name)
        return _response(200, b"", keep)

    def _infer(self, req: dict, keep: bool, chat: bool):
        s, t0 = self.script, self._origin or time.monotonic_ns()
        if not (req.get("model") or req.get("name")):
            return _json(400, {"error": "model is required"}, keep)
        self._inferred += 1
        if (s.status and self._inferred % max(1, s.status_every) == 0
                and (s.status_times is None or self._status_served.get(id(s), 0) < s.status_times)):
            self._status_served[id(s)] = self._status_served.get(id(s), 0) + 1
            return _json(
                s.status,
                {"error": s.error or (BUSY_ERROR if s.status == 503 else f"stub error (status {s.status})")},
                keep,
                f"Retry-After: {s.retry_after}\r\n" if s.retry_after else "",
            )
        model = self._find(req)
        if model is None:
            return _json(
                404, {"error": f'model "{req.get("model") or req.get("name")}" not found, try pulling it first'}, keep
            )
        base = {"model": model, "created_at": _now_iso()}
        empty = base | ({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
        if not (req.get("messages") if chat else req.get("prompt")):
            unload = _is_zero(req.get("keep_alive"))
            (self.loaded.discard if unload else self.loaded.add)(model)
            return _json(200, empty | {"done": True, "done_reason": "unload" if unload else "load"}, keep)
        self.loaded.add(model)
        text = "".join(str(m.get("content", "")) for m in req["messages"]) if chat else str(req["prompt"])
        n, reason = s.tokens, "stop"
        num_predict = (req.get("options") or {}).get("num_predict")
        if isinstance(num_predict, int) and 0 <= num_predict < n:
            n, reason = num_predict, "length"
        return self._generate(
            s, base, n, reason, chat, req.get("stream") is not False, keep, _prompt_tokens(s, text), t0, self._rid
        )

    def _openai(self, req: dict, keep: bool, chat: bool):
        """/v1/chat/completions and /v1/completions, streamed as server-sent events like Ollama 0.23's /v1 (an
        all-zero usage on every completions chunk, the real usage in a last ``choices: []`` event when
        ``stream_options.include_usage``, then ``data: [DONE]``); ``max_tokens`` bounds the answer."""
        s, t0 = self.script, self._origin or time.monotonic_ns()
        if s.status:
            err = {"error": {"message": s.error or (BUSY_ERROR if s.status == 503 else "stub error"),
                             "type": "api_error", "param": None, "code": None}}
            return _json(s.status, err, keep)
        model = self._find(req)
        if model is None:
            err = {"error": {"message": f'model "{req.get("model")}" not found, try pulling it first',
                             "type": "api_error", "param": None, "code": None}}
            return _json(404, err, keep)
        self.loaded.add(model)
        if chat:
            text = "".join(str(m.get("content", "")) for m in req.get("messages") or [])
        else:
            text = str(req.get("prompt") or "")
        n, reason = s.tokens, "stop"
        limit = req.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < n and not s.ignore_max_tokens:
            n, reason = limit, "length"
        usage = bool((req.get("stream_options") or {}).get("include_usage")) and not s.omit_usage
        return self._sse(s, model, n, reason, chat, keep, _prompt_tokens(s, text), usage, t0, self._rid)

    def _sse(self, s: Script, model, n, reason, chat, keep, prompt_tokens, usage, t0, rid=None):
        """Response generator of a streamed /v1 answer (see _Conn.run for the action protocol)."""
        record = None
        created = int(time.time())
        if chat:
            head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_ollama"}
        else:
            head = {"id": "cmpl-1", "object": "text_completion", "created": created, "model": model,
                    "system_fingerprint": "fp_ollama"}
        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

        def event(text, finish):
            if chat:
                choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}
                obj = head | {"choices": [choice]}
            else:
                obj = head | {"choices": [{"text": text, "index": 0, "finish_reason": finish}], "usage": zero}
            return _chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")

        yield _head(200, "text/event-stream", keep, None)
        sent = 0
        for i in range(n + 1):
            if i == s.disconnect_after:
                yield _CLOSE
                return
            if i == s.stall_after:
                yield _STALL
                return
            if i == s.error_after:
                err = {"error": {"message": s.error or RUN_ERROR, "type": "api_error", "param": None, "code": None}}
                yield _chunk(b"data: " + json.dumps(err).encode() + b"\n\n") + _END
                return
            if i == s.malformed_after:
                yield _chunk(b"data: " + s.malformed_line.encode() + b"\n\n")
            if i == n:
                break
            delay = s.first_token_delay + i * s.token_delay
            if delay:
                due = t0 + round(delay * 1e9)
                wait = due - time.monotonic_ns()
                if wait > 0:
                    yield wait / 1e9
                now = time.monotonic_ns()
                with self._lock:
                    if record is None:
                        record = {"id": rid, "rx": t0 / 1e9, "first": now / 1e9, "last": 0.0, "tokens": 0}
                        self._timeline.append(record)
                    record["last"], record["tokens"] = now / 1e9, i + 1
                    self._late.append((now - due) / 1e9)
            yield event(s.text(i), None)
            sent += 1
        out = event("", reason)
        if usage:
            obj = head | {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sent,
                                                   "total_tokens": prompt_tokens + sent}}
            out += _chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")
        if not s.omit_done:
            out += _chunk(b"data: [DONE]\n\n")
        yield out + _END

    def _generate(self, s: Script, base, n, reason, chat, stream, keep, prompt_tokens, t0, rid=None):
        """Response generator for generate/chat (see _Conn.run for the action protocol).

        Timings (ns, monotonic clock) are measured: load = request arrival (``t0``, the script's time zero)
        to generation start, prompt_eval = generation start to the first token's write, eval = first to last
        token write plus one token_delay (so eval_count/eval_duration ~ 1/token_delay), total = arrival to
        final chunk.  Paced writes of a streamed response are recorded for ``stats()``.
        """
        t_load = time.monotonic_ns()
        record = None
        field = b',"message":{"role":"assistant","content":' if chat else b',"response":'
        post = b'},"done":false}\n' if chat else b',"done":false}\n'
        model = json.dumps(base["model"]).encode()
        pre = b'{"model":%s,"created_at":"%s"%s' % (model, base["created_at"].encode(), field)
        if stream:
            yield _head(200, "application/x-ndjson", keep, None)
        texts, t_first, t_last = [], None, None
        for i in range(n + 1):
            if i == s.disconnect_after:
                yield _CLOSE
                return
            if i == s.stall_after:
                yield _STALL
                return
            if i == s.error_after:
                err = {"error": s.error or RUN_ERROR}
                yield _chunk(json.dumps(err).encode() + b"\n") + _END if stream else _json(500, err, keep)
                return
            if i == s.malformed_after:
                bad = s.malformed_line.encode() + b"\n"
                if not stream:
                    yield _response(200, bad, keep)
                    return
                yield _chunk(bad)
            if i == n:
                break
            delay = s.first_token_delay + i * s.token_delay
            if delay:  # paced stream: fresh created_at per chunk, like Ollama
                due = t0 + round(delay * 1e9)
                wait = due - time.monotonic_ns()
                if wait > 0:
                    yield wait / 1e9
                pre = b'{"model":%s,"created_at":"%s"%s' % (model, _now_iso().encode(), field)
            tok = s.text(i)
            out = _chunk(pre + json.dumps(tok).encode() + post) if stream else None
            t_last = time.monotonic_ns()  # just before the write (a stream's chunk goes out in this step)
            t_first = t_first or t_last
            if delay and stream:
                with self._lock:
                    if record is None:
                        record = {"id": rid, "rx": t0 / 1e9, "first": t_last / 1e9, "last": 0.0, "tokens": 0}
                        self._timeline.append(record)
                    record["last"], record["tokens"] = t_last / 1e9, i + 1
                    self._late.append((t_last - due) / 1e9)
            if stream:
                yield out
            texts.append(tok)
        end = time.monotonic_ns()
        t_first, t_last = t_first or end, t_last or end
        final = {"model": base["model"], "created_at": _now_iso()}
        content = "" if stream else "".join(texts)
        final |= {"message": {"role": "assistant", "content": content}} if chat else {"response": content}
        final |= {"done": True, "done_reason": reason}
        if not s.omit_eval_count:
            final |= {
                "total_duration": end - t0,
                "load_duration": max(1, t_load - t0),
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": max(1, t_first - t_load),
                "eval_count": len(texts),
                "eval_duration": max(1000, t_last - t_first + int(s.token_delay * 1e9)),
            }
        body = json.dumps(final, separators=(",", ":")).encode()
        yield _chunk(body + b"\n") + _END if stream else _response(200, body, keep)


def main(argv=None):
    """CLI: serve until SIGINT/SIGTERM, printing ``READY <port>`` once listening."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", action="append", help="served model name (repeatable)")
    p.add_argument("--loaded", action="append", help="model shown as loaded by /api/ps (repeatable)")
    p.add_argument("--uvloop", action="store_true", help="use uvloop if installed")
    p.add_argument("--spin-us", type=float, default=0.0,
                   help="poll instead of sleeping for the last N microseconds before each timer (a pinned stub)")
    p.add_argument("--omit-eval-count", action="store_true")
    p.add_argument("--report-lateness", action="store_true",
                   help="at exit, print to stderr how late paced writes went out against the script")
    fields = {
        "tokens": int,
        "token_text": str,
        "first_token_delay": float,
        "token_delay": float,
        "status": int,
        "error": str,
        "disconnect_after": int,
        "error_after": int,
        "malformed_after": int,
        "malformed_line": str,
        "stall_after": int,
    }
    for name, typ in fields.items():
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None)
    a = p.parse_args(argv)
    kw = {k: getattr(a, k) for k in fields if getattr(a, k) is not None}
    if a.uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            a.uvloop = False
    stub = StubOllama(
        Script(omit_eval_count=a.omit_eval_count, **kw),
        models=a.model or ("stub-model:latest",),
        loaded=a.loaded or (),
        port=a.port,
        uvloop=a.uvloop,
        spin=a.spin_us / 1e6,
    ).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY {stub.port}", flush=True)
    while not done.wait(0.5):
        pass
    stub.stop()
    if a.report_lateness:
        st = stub.stats()
        late = {k: "-" if v is None else f"{v * 1e3:.3f} ms" for k, v in st["lateness"].items()}
        print(f"stub lateness over {st['writes']} paced writes ({len(st['requests'])} requests): "
              f"p50 {late['p50']}, p90 {late['p90']}, max {late['max']}; "
              f"TCP_NODELAY on {st['nodelay']['on']} of {st['nodelay']['on'] + st['nodelay']['off']} connections",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
