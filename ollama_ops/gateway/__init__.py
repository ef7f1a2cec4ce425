"""`sollama serve`: the gateway in front of Ollama (keys, limits, a fair queue, metrics, access log, usage).

Layout: `app` builds the ASGI application (ops routes in FastAPI, the proxied /api and /v1 paths on a plain ASGI
hot path in `proxy`), `dispatch` is the interface to the upstream side with its one-host implementation (the
fleet's `ollama_ops.fleet.runtime.Fleet` is the other), `compose` is the composition root that picks the parts the
configuration names (the only module here that knows the fleet), `exchange` one request's bookkeeping,
`admission` owns the slots and the fair queue, `keystore` the API keys, `limiter` the
per-key windows, `upstream` the upstream (the library's streaming layer, `client.stream`), `metrics` the
Prometheus registry, `accesslog` and `usage` the off-hot-path writers, `httpd` the HTTP/1.1 server (ASGI, with the
extensions the hot path uses to write each upstream chunk from the upstream's read callback), `server` binds, runs
it and applies the drain-on-SIGTERM rules. Pure parts live in `ollama_ops.core.gateway`. Nothing here is imported
by `sollama --help`.
"""
