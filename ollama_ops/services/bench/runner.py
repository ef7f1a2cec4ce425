"""The bench's hot path: send streamed requests under a closed or open loop (or a trace's timeline, or
conversations turn by turn) and time every chunk. Each send asks the run's `PhaseTimeline` for its phase
(warm-up, measured, cool-down) and the run ends when it answers None.

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
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ollama_ops.client.transport import Failure, Transport
from ollama_ops.core.bench.arrivals import arrival_offsets
from ollama_ops.core.bench.lengths import LengthCheck
from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.metrics import queue_overhead, request_latencies
from ollama_ops.core.bench.phases import PhaseSize, PhaseTimeline
from ollama_ops.core.bench.prompts import PayloadPlan
from ollama_ops.core.bench.quantiles import QuantileSketch
from ollama_ops.core.bench.records import RequestRecord
from ollama_ops.core.ndjson import NS

DEAD_AFTER_CONNECT_FAILURES = 3
# An open loop / trace creates each request's task LEAD_S before its due time; the task takes a connection and
# then waits for the exact moment (`client.transport.wait_until`).
LEAD_S = 0.005
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
        self.first_send: float | None = None  # the measured phase's first send and last response
        self.last_end: float | None = None
        self.t0 = time.perf_counter()  # when the run began sending
        self.dues: deque[float] = deque()  # an open loop's scheduled sends not yet passed (perf_counter), in order
        self.timeline = PhaseTimeline(PhaseSize(), None, None, PhaseSize())
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

    async def run(self, spec: LoadSpec, timeline: PhaseTimeline) -> None:
        """Send the whole run, warm-up to cool-down, under one load shape; `timeline` gives each request its
        phase as it is sent and says when to stop. Waits for every request sent."""
        if self.stop_reason:
            return
        self.timeline = timeline
        plan = self.plan
        if plan.conversations is not None:
            coro = self._conversations(spec)
        elif plan.offsets is not None or spec.open_loop:
            coro = self._open(spec, plan.offsets)
        else:
            coro = self._closed(spec)
        self._phase = asyncio.ensure_future(coro)
        try:
            await self._phase
        except asyncio.CancelledError:
            if self.stop_reason is None:  # cancelled from outside, not by stop()
                raise
        finally:
            self._phase = None
            self.dues.clear()
        await asyncio.sleep(0)  # let the last requests' bookkeeping (scheduled with call_soon) run
        if self.sink_error is not None:
            raise self.sink_error

    @property
    def wall_s(self) -> float:
        """First send → last response of the measured phase."""
        if self.first_send is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_send)

    def next_send_in(self) -> float | None:
        """Seconds until the next scheduled send of an open loop (None: none is scheduled)."""
        dues = self.dues
        now = time.perf_counter()
        while dues and dues[0] < now - 0.001:  # passed: that send has happened
            dues.popleft()
        return dues[0] - now if dues else None

    def _next_phase(self, at: float | None = None) -> str | None:
        """The phase of the request about to be sent (None: the run is done); `at`: its scheduled time."""
        if self.stop_reason is not None:
            return None
        now = at if at is not None else time.perf_counter() - self.t0
        return self.timeline.next(now)

    # -- load shapes ------------------------------------------------------------------------------------------

    async def _closed(self, spec: LoadSpec) -> None:
        next_idx = 0
        workers = spec.concurrency if not spec.open_loop else (spec.max_concurrency or 1)
        total = spec.total_requests()
        if total is not None:
            workers = min(workers, total)
        self.t0 = time.perf_counter()

        async def worker() -> None:
            nonlocal next_idx
            while (phase := self._next_phase()) is not None:
                idx = next_idx
                next_idx += 1
                await self.one(idx, phase)

        await asyncio.gather(*(worker() for _ in range(max(1, workers))))

    async def _conversations(self, spec: LoadSpec) -> None:
        """Conversations, the turns of each in order (a turn is sent only when the one before it has ended), and
        several at once: one per worker (closed loop), or each started at the next arrival of `--rate` (open
        loop, capped by --max-concurrency conversations). Stops taking turns when the timeline is done."""
        conversations = self.plan.conversations
        assert conversations is not None
        next_idx, next_conv, committed = 0, 0, 0
        total = spec.total_requests()
        self.t0 = time.perf_counter()

        def take() -> list[int]:
            nonlocal next_conv, committed
            turns = conversations[next_conv % len(conversations)]
            next_conv += 1
            committed += len(turns)
            return turns

        async def conversation(turns: list[int], due: float | None = None) -> bool:
            nonlocal next_idx
            for turn, pick in enumerate(turns):
                phase = self._next_phase(None if due is None or turn else due - self.t0)
                if phase is None:
                    return False
                idx = next_idx
                next_idx += 1
                await self.one(idx, phase, pick=pick, turn=turn, due=due if turn == 0 else None)
            return True

        if not spec.open_loop:
            async def worker() -> None:
                while await conversation(take()):
                    pass

            await asyncio.gather(*(worker() for _ in range(max(1, spec.concurrency))))
            return
        gate = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None

        async def gated(due: float) -> None:
            turns = take()
            if gate is None:
                await conversation(turns, due)
                return
            async with gate:
                await conversation(turns, due)

        assert spec.rate is not None
        # a run of known size starts only the conversations it can finish (a file once: each of them, whole)
        await self._timeline(arrival_offsets(spec.rate, spec.arrival, spec.seed), gated,
                             lambda: total is None or committed < total)

    async def _open(self, spec: LoadSpec, offsets: list[float] | None = None) -> None:
        """Requests on a timeline: seeded arrivals at `spec.rate`, or a trace's own `offsets` (request k sends the
        trace's k-th body)."""
        gate = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None
        trace = offsets is not None
        next_k = 0
        self.t0 = time.perf_counter()

        async def gated(due: float) -> None:
            nonlocal next_k
            k = next_k
            next_k += 1
            phase = self._next_phase(due - self.t0)
            if phase is None:
                return
            pick = k if trace else None
            if gate is None:
                await self.one(k, phase, pick=pick, due=due)
                return
            async with gate:
                await self.one(k, phase, pick=pick, due=due)

        if offsets is None:
            assert spec.rate is not None
            timeline: Iterator[float] = arrival_offsets(spec.rate, spec.arrival, spec.seed)
        else:
            timeline = iter(offsets)
        await self._timeline(timeline, gated)

    async def _timeline(self, timeline: Iterator[float], start: Callable[[float], Awaitable[None]],
                        more: Callable[[], bool] = lambda: True) -> None:
        """Start `start(due)` at each offset of `timeline` (seconds from now) until the phase timeline is done
        (or `more()` says no more starts are needed).

        Precision: a task is created LEAD_S before its due time (creating it late would add a loop turn to its
        send), and it waits for the exact time itself (`wait_until`: sleep, then the last SPIN_S turn by turn);
        the wire client takes a connection before that wait, so the due time sees only the socket write."""
        tasks: set[asyncio.Task[None]] = set()
        t0 = self.t0
        try:
            for offset in timeline:
                if self.timeline.phase is None or self.stop_reason is not None or not more():
                    break
                due = t0 + offset
                self.dues.append(due)
                # always yield at least once: a task created behind schedule claims its phase before the next
                await asyncio.sleep(max(0.0, due - LEAD_S - time.perf_counter()))
                if self.timeline.phase is None or self.stop_reason is not None or not more():
                    break
                task = asyncio.ensure_future(start(due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in list(tasks):
                task.cancel()

    # -- one request ------------------------------------------------------------------------------------------

    async def one(self, idx: int, phase: str, pick: int | None = None, turn: int | None = None,
                  due: float | None = None) -> None:
        """Send request `idx` of `phase` (body `pick`, else the plan's choice), time it, and hand its record to the
        sink (failures included). `turn`: its place in a conversation; `due`: when the timeline wants it sent
        (the transport waits for that moment once it holds a connection)."""
        if pick is None:
            pick = self.plan.pick(idx)
        body = self.plan.bodies[pick]
        times: list[float] = []
        final: dict[str, Any] | None = None
        error: Failure | None = None
        measured = phase == "run"
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        # [send time, gateway queue wait]: the transport replaces the first with the time of the request's socket
        # write and sets the second when the answer carries X-Queue-Wait-Ms.
        start = time.perf_counter() if due is None else due  # when the load wanted it sent
        if measured and (self.first_send is None or start < self.first_send):
            self.first_send = start
        sent: list[float | None] = [start, None]
        try:
            final = await self.transport.exchange(self.path, body, times, sent, due)
            self.connect_failures = 0
        except Failure as exc:
            error = exc
        except TimeoutError:
            error = Failure("timeout", "no complete answer within the per-request timeout")
        except ConnectionError as exc:
            error = Failure("disconnect", f"connection broke mid-stream ({type(exc).__name__})")
        finally:
            self.in_flight -= 1
        send = sent[0]
        assert send is not None
        if error is not None and error.kind == "local":
            self.stop(OUT_OF_FILES)  # every further request would fail the same way, and it is not the server
        if error is not None and error.kind == "connect":
            self.connect_failures += 1
            if self.connect_failures >= DEAD_AFTER_CONNECT_FAILURES:
                self.stop("server unreachable")
        end = time.perf_counter()
        if measured:
            self.last_end = end
        # Bookkeeping runs on the next loop turn, off the critical path: the worker sends its next request first.
        self._loop.call_soon(self._finish, idx, pick, phase, send, times, final, error, turn, due, sent[1])

    def _finish(self, idx: int, pick: int, phase: str, send: float, times: list[float],
                final: dict[str, Any] | None, error: Failure | None, turn: int | None = None,
                due: float | None = None, queue_wait: float | None = None) -> None:
        try:
            record = self._record(idx, phase, send, times, final, error)
            record.gateway_queue_s = queue_wait
            record.turn = None if turn is None else turn + 1
            if phase == "run":
                if due is not None:
                    self.send_lag.add(send - due)
                if record.ok and record.output_tokens_source == "server":
                    asked, prompt = self.plan.targets[pick]
                    self.lengths.add(asked, record.output_tokens, prompt, record.prompt_tokens or None)
                if turn is not None and record.ok and record.ttft is not None:
                    self.turn_ttft.setdefault(turn, QuantileSketch()).add(record.ttft)
            self.sink(record)
        except Exception as exc:  # noqa: BLE001 - e.g. the store failed: end the run, re-raised by run
            if self.sink_error is None:
                self.sink_error = exc
            self.stop("sink failed")

    def _record(self, idx: int, phase: str, send: float, times: list[float], final: dict[str, Any] | None,
                error: Failure | None) -> RequestRecord:
        send_epoch = self.epoch0 + (send - self.perf0)
        ttft, e2el, itl = request_latencies(send, times)
        if error is not None or final is None:
            failure = error or Failure("malformed", "no final chunk")
            return RequestRecord(idx=idx, send_time=send_epoch, ok=False, phase=phase, ttft=ttft, e2el=e2el,
                                 itl=itl, output_tokens=len(times), output_tokens_source="chunks",
                                 error_kind=failure.kind, error=str(failure))

        get = final.get
        eval_count = get("eval_count")
        has_count = type(eval_count) is int  # not a bool, not a float
        prompt_count = get("prompt_eval_count")
        total = _seconds(get("total_duration"))
        return RequestRecord(
            idx=idx, send_time=send_epoch, ok=True, phase=phase, ttft=ttft, e2el=e2el, itl=itl,
            output_tokens=eval_count if type(eval_count) is int else len(times),
            output_tokens_source="server" if has_count else "chunks",
            prompt_tokens=prompt_count if type(prompt_count) is int else 0,
            load_s=_seconds(get("load_duration")), prompt_eval_s=_seconds(get("prompt_eval_duration")),
            eval_s=_seconds(get("eval_duration")), total_s=total, queue_s=queue_overhead(e2el, total))
