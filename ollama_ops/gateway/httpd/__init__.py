"""The gateway's HTTP/1.1 server: an ASGI server on asyncio protocols with llhttp's C request parser (httptools),
in the place of uvicorn. `cycle` is one request and its response (ASGI receive/send and the extensions), `conn`
one caller's connection (parsing, pipelining, flow control), `server` the listeners, signals and the drain.

Why its own: measured with `benchmarks/gateway_overhead.py` (a 16-chunk stream at concurrency 64 on 2 cores), a
bare relay under uvicorn already added +3.9 ms to the inter-chunk gap p99 and spent 0.34 ms of CPU per request,
where the same relay on asyncio protocols, each upstream chunk written downstream from the upstream socket's
read callback, added +0.07 ms and spent 0.15 ms. Every chunk through an ASGI `send` wakes the handler's task once;
here the hot path may skip that with two ASGI scope extensions:

- `sollama.push(data, last=False) -> bool`: write response body bytes now, from any callback (`last`: they end
  the response; False back: the caller's socket buffer is full, `await sollama.drain()` before pushing more);
- `sollama.on_disconnect(callback)`: called once, at once, when the caller's connection is lost while its
  response is unfinished (instead of a task per request waiting on `receive()` for `http.disconnect`).

Everything else is plain ASGI 3 (the FastAPI operations routes run on it unchanged): keep-alive, pipelined
requests served in order, `Expect: 100-continue`, chunked or sized responses, HEAD, flow control both ways,
request heads over 64 KiB refused with 431, malformed requests with 400, idle keep-alive connections closed after
`keep_alive_s`. At the first SIGTERM/SIGINT it stops accepting, lets unfinished responses run for up to
`drain_timeout` seconds (`on_signal` runs first: the gateway refuses its queue), then closes every connection.
"""

from ollama_ops.gateway.httpd.conn import HEAD_LIMIT, HttpConn
from ollama_ops.gateway.httpd.cycle import Cycle, scope_extension
from ollama_ops.gateway.httpd.server import HttpServer

__all__ = ["HEAD_LIMIT", "Cycle", "HttpConn", "HttpServer", "scope_extension"]
