"""The ASGI application: FastAPI for the operations routes (/healthz, /readyz, /metrics, /queue, and the OpenAPI
reference at /docs, which also lists the proxied routes from the allow-list), and the plain ASGI hot path in
`proxy` for /api/* and /v1/* (no request-model validation on the way to Ollama)."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ollama_ops import __version__
from ollama_ops.core.gateway import dialect
from ollama_ops.core.gateway.keys import extract_key
from ollama_ops.core.gateway.routes import ROUTES
from ollama_ops.gateway import proxy
from ollama_ops.gateway.runtime import Gateway


def _ops_app(gw: Gateway) -> FastAPI:
    app = FastAPI(title="sollama gateway", version=__version__,
                  description="Ollama's API behind API keys, limits, a fair queue, metrics and usage. "
                              "Send keys as `Authorization: Bearer …` or `X-API-Key`.")

    @app.get("/healthz", tags=["operations"], summary="The gateway lives")
    async def healthz() -> dict:
        return {"status": "ok", "draining": gw.admission.draining, "uptime_s": round(time.time() - gw.started, 3)}

    @app.get("/readyz", tags=["operations"], summary="The upstream answers (503 otherwise)")
    async def readyz() -> JSONResponse:
        up, upstream = await gw.dispatch.readiness()  # one host: it answers; a fleet: at least one host is in
        ready = up and not gw.admission.draining
        body = {"status": "ready" if ready else "not ready", **upstream, "draining": gw.admission.draining}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (admin key or metrics token)")
    async def metrics(request: Request) -> Response:
        auth, xkey = request.headers.get("authorization"), request.headers.get("x-api-key")
        if not gw.may_read_metrics(auth, xkey):
            status = 403 if gw.keyring.lookup(extract_key(auth, xkey)) else 401
            msg = dialect.UNAUTHORIZED if status == 401 else "metrics need an admin key or the metrics token"
            return JSONResponse({"error": msg}, status_code=status)
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/queue", tags=["operations"], summary="Queue depth (admin: every key; a key: its own requests)")
    async def queue(request: Request) -> JSONResponse:
        key, ok = gw.authenticate(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if not ok:
            return JSONResponse({"error": dialect.UNAUTHORIZED}, status_code=401)
        now = gw.admission.clock()
        waiting = gw.admission.snapshot()
        base: dict[str, object] = {"slots": gw.admission.slots, "in_flight": gw.admission.in_flight,
                                   "depth": len(waiting), "draining": gw.admission.draining}
        base.update(await gw.dispatch.queue_info())  # a fleet: every replica's waiting requests, the hosts
        rows = [{"position": pos, "key": w.key, "model": w.model, "request_id": w.request_id,
                 "wait_s": round(now - w.since, 3)} for pos, w in waiting]
        if key is None or key.admin:
            by_key: dict[str, int] = {}
            by_model: dict[str, int] = {}
            for _, w in waiting:
                by_key[w.key] = by_key.get(w.key, 0) + 1
                by_model[w.model] = by_model.get(w.model, 0) + 1
            oldest = max((round(now - w.since, 3) for _, w in waiting), default=0.0)
            return JSONResponse({**base, "by_key": by_key, "by_model": by_model, "oldest_wait_s": oldest,
                                 "waiting": rows})
        mine = [{k: v for k, v in r.items() if k != "key"} for r in rows if r["key"] == key.name]
        return JSONResponse({**base, "yours": mine})

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for route in ROUTES:
            op = {"summary": route.summary, "tags": ["ollama" if route.area == "api" else "openai"],
                  "description": f"Forwarded to Ollama byte for byte ({route.kind.value}).",
                  "responses": {"200": {"description": "Ollama's answer"}}}
            schema["paths"].setdefault(route.path, {})[route.method.lower()] = op
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class GatewayApp:
    """/api/* and /v1/* go to the proxy; everything else to the FastAPI app (the server runs the gateway's start and
    stop itself: no ASGI lifespan)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.ops = _ops_app(gw)
        self.inner = self._route
        if gw.config.cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            self.inner = CORSMiddleware(self._route, allow_origins=list(gw.config.cors_origins),
                                        allow_methods=["GET", "POST", "DELETE", "HEAD", "OPTIONS"],
                                        allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
                                        expose_headers=["X-Request-ID", "X-Queue-Wait-Ms", "Retry-After",
                                                        "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
                                        allow_credentials=False)

    async def _route(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/api/", "/v1/")):
            await proxy.handle(self.gw, scope, receive, send)
        else:
            await self.ops(scope, receive, send)

    def __call__(self, scope, receive, send) -> Awaitable[None]:
        return self.inner(scope, receive, send)  # the inner app's coroutine itself (one frame less per request)


def build_app(gw: Gateway) -> GatewayApp:
    return GatewayApp(gw)
