"""The gateway's state: configuration, keys, limits, admission, upstream, metrics, access log and usage; and the
end of every request (`finish`): one access-log line, the metrics, one usage row."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ollama_ops.core.gateway.keys import KeyRecord, extract_key
from ollama_ops.edges.store import UsageRow
from ollama_ops.gateway.accesslog import AccessLog
from ollama_ops.gateway.admission import Admission
from ollama_ops.gateway.dispatch import Dispatcher, SingleHost
from ollama_ops.gateway.exchange import Exchange
from ollama_ops.gateway.keystore import KeyRing, keys_path
from ollama_ops.gateway.limiter import Limiter, make_storage
from ollama_ops.gateway.metrics import Metrics
from ollama_ops.gateway.settings import GatewayConfig
from ollama_ops.gateway.usage import UsageSink

if TYPE_CHECKING:
    from ollama_ops.gateway.upstream import Upstream


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str).encode


class Gateway:
    """The gateway's parts. The embedded ones are the defaults (the keys file, in-process limit windows, the
    SQLite usage sink, one upstream); `gateway.compose.build_gateway` injects the shared ones (PostgreSQL, Redis,
    the fleet's dispatcher) without this module knowing them."""

    def __init__(self, config: GatewayConfig, *, limiter: Limiter | None = None, keyring: KeyRing | None = None,
                 dispatcher: Callable[[Gateway], Dispatcher] | None = None,
                 usage_sink: Callable[[GatewayConfig], Any] | None = None, clock=time.time) -> None:
        self.config = config
        self.clock = clock
        self.keyring = keyring or KeyRing(config.keys_path or keys_path(), clock=clock)
        self.limiter = limiter or Limiter(make_storage(config.effective_limits_storage))
        slots = config.slots
        if config.fleet:
            slots = sum(s for _, s in config.upstreams) if config.upstreams else config.slots
        self.admission = Admission(slots, config.queue_depth, config.max_wait)
        self.metrics = Metrics(queue_depth=lambda: self.admission.queued, in_flight=lambda: self.admission.in_flight,
                               slots=self.slots_by_upstream, multiprocess_dir=config.metrics_dir)
        self.dispatch: Dispatcher = (dispatcher or _single_host)(self)
        self._usage_sink = usage_sink or (lambda c: UsageSink(c.usage_db))
        self.access_log: AccessLog | None = None
        self.usage: Any = None  # a BatchSink (SQLite or PostgreSQL): add(row or rows), close()
        self.started = time.time()
        self.pid = os.getpid()
        # Finished requests' log lines and usage rows, written in batches every FLUSH_S: the log lines with one
        # write from the loop, the usage rows handed to the usage thread (one wake-up per batch, not per request:
        # each wake-up takes the GIL from the loop).
        self._log_batch: list[str] = []
        self._usage_batch: list[UsageRow] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._usage_at = 0.0  # when usage rows last went to the usage thread (monotonic)

    def slots_by_upstream(self) -> list[tuple[str, int]]:
        """(upstream URL, slots) for each upstream: the fleet's hosts, else the one upstream."""
        return self.dispatch.slots_by_upstream()

    # -- life cycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.access_log = AccessLog(self.config.access_log_path, max_bytes=self.config.access_log_bytes)
        self.usage = self._usage_sink(self.config)
        await self.dispatch.start()
        self.metrics.start()  # with workers: this worker's gauges into the shared files (metrics.py)

    def begin_drain(self) -> int:
        """SIGTERM: refuse new and queued requests with 503; in-flight ones go on."""
        return self.admission.drain() + self.dispatch.drain()  # and those waiting for a host's slot

    FLUSH_S = 0.2

    USAGE_EVERY_S = 1.0  # usage rows go to the usage thread at most this often (or USAGE_ROWS at a time)
    USAGE_ROWS = 256

    def _flush(self, final: bool = False) -> None:
        self._flush_handle = None
        if self._log_batch and self.access_log is not None:
            batch, self._log_batch = self._log_batch, []
            self.access_log.write(batch)
        if self._usage_batch and self.usage is not None:
            now = time.monotonic()
            if final or len(self._usage_batch) >= self.USAGE_ROWS or now - self._usage_at >= self.USAGE_EVERY_S:
                batch_rows, self._usage_batch = self._usage_batch, []
                self._usage_at = now
                self.usage.add(batch_rows)
            else:
                self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_later(self.FLUSH_S, self._flush)
            except RuntimeError:  # no loop (shutting down): write now
                self._flush(final=True)

    async def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush(final=True)
        self.metrics.stop()
        await self.dispatch.stop()
        await self.limiter.close()
        if self.usage is not None:
            self.usage.close()
        if self.access_log is not None:
            self.access_log.close()

    # -- requests -------------------------------------------------------------------------------------------
    def auth_required(self) -> bool:
        mode = self.config.auth
        if mode == "off":
            return False
        if mode == "required":
            return True
        self.keyring.refresh()
        return self.keyring.any_keys

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> tuple[KeyRecord | None, bool]:
        """(key, ok): the caller's key (None = anonymous, when auth is off) and whether it may go on."""
        secret = extract_key(authorization, x_api_key)
        if not self.auth_required():
            return (self.keyring.lookup(secret) if secret and self.config.auth != "off" else None), True
        key = self.keyring.lookup(secret)
        return key, key is not None

    def may_read_metrics(self, authorization: str | None, x_api_key: str | None) -> bool:
        import hmac

        if not self.auth_required():
            return True
        secret = extract_key(authorization, x_api_key)
        token = self.config.metrics_token
        if secret and token and hmac.compare_digest(secret.encode(), token.encode()):
            return True
        key = self.keyring.lookup(secret)
        return key is not None and key.admin

    def note_upstream(self, up: bool, upstream: Upstream | None = None) -> None:
        self.dispatch.note(upstream, up)

    def finish(self, ex: Exchange) -> None:
        """Log, count and record a finished request (off the hot path's disk: queues only)."""
        code = ex.code or ex.status
        model_label = ex.model if code < 400 else "-"
        self.metrics.request_done(ex.key, model_label, ex.route, str(code), ex.duration_s, ex.ttft_s,
                                  ex.prompt_tokens, ex.output_tokens)
        entry = {
            "time": datetime.fromtimestamp(ex.started, UTC).isoformat(timespec="milliseconds"),
            "request_id": ex.request_id, "key": ex.key, "model": ex.model, "method": ex.method,
            "route": ex.route, "path": ex.path if ex.route != "other" else ex.path[:200], "status": code,
            "queue_ms": round(ex.queue_s * 1000, 3),
            "ttft_ms": None if ex.ttft_s is None else round(ex.ttft_s * 1000, 3),
            "duration_ms": round(ex.duration_s * 1000, 3), "prompt_tokens": ex.prompt_tokens,
            "output_tokens": ex.output_tokens, "stream": ex.stream, "client": ex.client,
            "pid": self.pid,  # which process served it (`serve --workers N`)
        }
        if ex.error:
            entry["error"] = ex.error
        if self.config.log_prompts and ex.prompt is not None:
            entry["prompt"] = ex.prompt
        # encoded here, a few µs per request, so that the writer thread only writes (a batch encoded there would
        # hold the GIL for milliseconds while requests wait for it)
        self._log_batch.append(_dumps(entry))
        if self.usage is not None and ex.kind == "infer" and ex.authed:
            outcome = "ok" if code < 400 else "interrupted" if code == 499 else "error"
            self._usage_batch.append(UsageRow(time=ex.started, command="gateway", model=ex.model,
                                              prompt_tokens=ex.prompt_tokens, eval_tokens=ex.output_tokens,
                                              total_s=ex.duration_s, ttft_s=ex.ttft_s, outcome=outcome,
                                              error=ex.error, key=ex.key, request_id=ex.request_id))
        self._schedule_flush()


def _single_host(gw: Gateway) -> Dispatcher:
    return SingleHost(gw.config, gw.metrics)
