"""The bench's hot path: send streamed requests under a closed or open loop and time every chunk.

Each request goes over one `client.transport.Transport`: on a plain http:// server the raw asyncio client (the send
time is read at the socket write, each chunk is clocked by the kernel's receive timestamp), on https:// the
aiohttp path beside it. Both hand back the final object or raise a `Failure` with the request's error kind.

Kept lean on purpose (the load generator must not be the bottleneck): bodies are pre-serialized and each finished
request becomes one `RequestRecord` handed to `sink` on the next loop turn, off the critical path; cancelled
in-flight requests (Ctrl-C, dead server) are not recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ollama_ops.client.transport import Failure, Transport
from ollama_ops.core.bench.arrivals import arrival_offsets
from ollama_ops.core.bench.lengths import LengthCheck
from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.metrics import queue_overhead, request_latencies
from ollama_ops.core.bench.prompts import PayloadPlan
from ollama_ops.core.bench.quantiles import QuantileSketch
from ollama_ops.core.bench.records import RequestRecord
from ollama_ops.core.ndjson import NS

DEAD_AFTER_CONNECT_FAILURES = 3
# asyncio's timers wake up to ~1 ms late (epoll waits in whole ms, and a timer counts as due within the clock's
# resolution); an open loop / trace sleeps until SPIN_S before a send, then yields loop turns until it is due.
SPIN_S = 0.002
OUT_OF_FILES = "out of file descriptors"  # a stop reason: a local limit ended the run (exit 1, not 4)


def _seconds(value: Any) -> float | None:
    """Nanoseconds from the final chunk → seconds (None when missing or not a number)."""
    return value * NS if value.__class__ in (int, float) else None


class Runner:
    """Runs the phases of one bench run, every request over `transport`."""

    def __init__(self, transport: Transport, path: str, plan: PayloadPlan,
                 sink: Callable[[RequestRecord], None]) -> None:
        self.transport = transport
        self.path = path
        self.plan = plan
        self.sink = sink
        self.perf0 = time.perf_counter()
        self.epoch0 = time.time()
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests in flight at once (warm-up included)
        self.connect_failures = 0
        self.stop_reason: str | None = None  # "interrupted" | "server unreachable" | OUT_OF_FILES
        self.first_send: float | None = None
        self.last_end: float | None = None
        self._phase: asyncio.Task[Any] | None = None
        self._loop = asyncio.get_running_loop()  # a Runner is made inside the loop it runs on
        self.sink_error: Exception | None = None
        self.lengths = LengthCheck()  # asked vs returned token counts of the measured requests
        self.send_lag = QuantileSketch()  # open loop / trace: actual socket write − scheduled send (seconds)
        self.turn_ttft: dict[int, QuantileSketch] = {}  # conversations: TTFT by turn (0-based)

    # -- control ----------------------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """End the run early: stop sending and cancel in-flight requests."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._phase is not None and not self._phase.done():
            self._phase.cancel()

    async def run_phase(self, start: int, spec: LoadSpec, count: int | None, duration: float | None,
                        warmup: bool) -> None:
        """Send requests start, start+1, … until `count` were sent or `duration` elapsed; wait for them."""
        if self.stop_reason:
            return
        if not warmup:
            self.first_send = self.last_end = None
        plan = self.plan
        if plan.conversations is not None:
            coro = self._conversations(start, spec, count, duration, warmup)
        elif plan.offsets is not None and not warmup:
            coro = self._open(start, spec, count, duration, plan.offsets)
        elif spec.open_loop and not warmup:
            coro = self._open(start, spec, count, duration)
        else:
            coro = self._closed(start, spec, count, duration, warmup)
        self._phase = asyncio.ensure_future(coro)
        try:
            await self._phase
        except asyncio.CancelledError:
            if self.stop_reason is None:  # cancelled from outside, not by stop()
                raise
        finally:
            self._phase = None
        await asyncio.sleep(0)  # let the last requests' bookkeeping (scheduled with call_soon) run
        if self.sink_error is not None:
            raise self.sink_error

    @property
    def wall_s(self) -> float:
        """First send → last response of the measured phase."""
        if self.first_send is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_send)

    # -- load shapes ------------------------------------------------------------------------------------------

    async def _closed(self, start: int, spec: LoadSpec, count: int | None, duration: float | None,
                      warmup: bool) -> None:
        end = None if count is None else start + count
        deadline = None if duration is None else time.perf_counter() + duration
        next_idx = start
        workers = spec.concurrency if not spec.open_loop else (spec.max_concurrency or 1)
        if end is not None:
            workers = min(workers, end - start)

        async def worker() -> None:
            nonlocal next_idx
            while self.stop_reason is None:
                if (end is not None and next_idx >= end) or (deadline is not None
                                                              and time.perf_counter() >= deadline):
                    return
                idx = next_idx
                next_idx += 1
                await self.one(idx, warmup)

        await asyncio.gather(*(worker() for _ in range(max(1, workers))))

    async def _conversations(self, start: int, spec: LoadSpec, count: int | None, duration: float | None,
                             warmup: bool) -> None:
        """Conversations in parallel (one per worker at a time), the turns of each in order: a turn is sent only
        when the one before it has ended. Stops taking turns after `count` requests or `duration`."""
        conversations = self.plan.conversations
        assert conversations is not None
        end = None if count is None else start + count
        deadline = None if duration is None else time.perf_counter() + duration
        next_idx, next_conv = start, 0
        workers = spec.concurrency

        def more() -> bool:
            return (self.stop_reason is None and (end is None or next_idx < end)
                    and (deadline is None or time.perf_counter() < deadline))

        async def worker() -> None:
            nonlocal next_idx, next_conv
            while more():
                turns = conversations[next_conv % len(conversations)]
                next_conv += 1
                for turn, pick in enumerate(turns):
                    if not more():
                        return
                    idx = next_idx
                    next_idx += 1
                    await self.one(idx, warmup, pick=pick, turn=turn)

        await asyncio.gather(*(worker() for _ in range(max(1, workers))))

    async def _open(self, start: int, spec: LoadSpec, count: int | None, duration: float | None,
                    offsets: list[float] | None = None) -> None:
        """Requests on a timeline: seeded arrivals at `spec.rate`, or a trace's own `offsets` (request k sends the
        trace's k-th body)."""
        gate = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None
        tasks: set[asyncio.Task[None]] = set()
        trace = offsets is not None

        async def gated(idx: int, due: float, k: int) -> None:
            pick = k if trace else None
            if gate is None:
                await self.one(idx, False, pick=pick, due=due)
                return
            async with gate:
                await self.one(idx, False, pick=pick, due=due)

        if offsets is None:
            assert spec.rate is not None
            timeline = arrival_offsets(spec.rate, spec.arrival, spec.seed)
        else:
            timeline = iter(offsets)
        t0 = time.perf_counter()
        try:
            for k, offset in enumerate(timeline):
                if (count is not None and k >= count) or (duration is not None and offset >= duration):
                    break
                due = t0 + offset
                delay = due - time.perf_counter()
                if delay > SPIN_S:
                    await asyncio.sleep(delay - SPIN_S)
                while time.perf_counter() < due:  # the last SPIN_S: yield turn by turn (other streams go on)
                    await asyncio.sleep(0)
                task = asyncio.ensure_future(gated(start + k, due, k))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in list(tasks):
                task.cancel()

    # -- one request ------------------------------------------------------------------------------------------

    async def one(self, idx: int, warmup: bool, pick: int | None = None, turn: int | None = None,
                  due: float | None = None) -> None:
        """Send request `idx` (body `pick`, else the plan's choice), time it, and hand its record to the sink
        (failures included). `turn`: its place in a conversation; `due`: when the timeline wanted it sent."""
        if pick is None:
            pick = self.plan.pick(idx)
        body = self.plan.bodies[pick]
        times: list[float] = []
        final: dict[str, Any] | None = None
        error: Failure | None = None
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        send = time.perf_counter()
        if not warmup and self.first_send is None:
            self.first_send = send
        sent = [send]  # the transport replaces it with the time of the request's socket write
        try:
            final = await self.transport.exchange(self.path, body, times, sent)
            self.connect_failures = 0
        except Failure as exc:
            error = exc
        except TimeoutError:
            error = Failure("timeout", "no complete answer within the per-request timeout")
        except ConnectionError as exc:
            error = Failure("disconnect", f"connection broke mid-stream ({type(exc).__name__})")
        finally:
            self.in_flight -= 1
        if error is not None and error.kind == "local":
            self.stop(OUT_OF_FILES)  # every further request would fail the same way, and it is not the server
        if error is not None and error.kind == "connect":
            self.connect_failures += 1
            if self.connect_failures >= DEAD_AFTER_CONNECT_FAILURES:
                self.stop("server unreachable")
        end = time.perf_counter()
        if not warmup:
            self.last_end = end
        # Bookkeeping runs on the next loop turn, off the critical path: the worker sends its next request first.
        self._loop.call_soon(self._finish, idx, pick, warmup, sent[0], times, final, error, turn, due)

    def _finish(self, idx: int, pick: int, warmup: bool, send: float, times: list[float],
                final: dict[str, Any] | None, error: Failure | None, turn: int | None = None,
                due: float | None = None) -> None:
        try:
            record = self._record(idx, warmup, send, times, final, error)
            if not warmup:
                if due is not None:
                    self.send_lag.add(send - due)
                if record.ok and record.output_tokens_source == "server":
                    asked, prompt = self.plan.targets[pick]
                    self.lengths.add(asked, record.output_tokens, prompt, record.prompt_tokens or None)
                if turn is not None and record.ok and record.ttft is not None:
                    self.turn_ttft.setdefault(turn, QuantileSketch()).add(record.ttft)
            self.sink(record)
        except Exception as exc:  # noqa: BLE001 - e.g. the store failed: end the run, re-raised by run_phase
            if self.sink_error is None:
                self.sink_error = exc
            self.stop("sink failed")

    def _record(self, idx: int, warmup: bool, send: float, times: list[float], final: dict[str, Any] | None,
                error: Failure | None) -> RequestRecord:
        send_epoch = self.epoch0 + (send - self.perf0)
        ttft, e2el, itl = request_latencies(send, times)
        if error is not None or final is None:
            failure = error or Failure("malformed", "no final chunk")
            return RequestRecord(idx=idx, send_time=send_epoch, ok=False, warmup=warmup, ttft=ttft, e2el=e2el,
                                 itl=itl, output_tokens=len(times), output_tokens_source="chunks",
                                 error_kind=failure.kind, error=str(failure))

        get = final.get
        eval_count = get("eval_count")
        has_count = type(eval_count) is int  # not a bool, not a float
        prompt_count = get("prompt_eval_count")
        total = _seconds(get("total_duration"))
        return RequestRecord(
            idx=idx, send_time=send_epoch, ok=True, warmup=warmup, ttft=ttft, e2el=e2el, itl=itl,
            output_tokens=eval_count if type(eval_count) is int else len(times),
            output_tokens_source="server" if has_count else "chunks",
            prompt_tokens=prompt_count if type(prompt_count) is int else 0,
            load_s=_seconds(get("load_duration")), prompt_eval_s=_seconds(get("prompt_eval_duration")),
            eval_s=_seconds(get("eval_duration")), total_s=total, queue_s=queue_overhead(e2el, total))
