"""The bench's `Transport` (`client.transport`) over aiohttp, for https:// servers (`client.wire` speaks plain
http://).

The send time is the clock read before `session.post`; on Python < 3.12 aiohttp writes the request a loop turn
later, and a chunk is clocked only when the reading task resumes, so TTFT here reads 0.4 ms (concurrency 1) to
~2 ms (concurrency 32) high. It splits lines with the wire client's `feed_lines`, so both give the same records
and the same error kinds.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from ollama_ops.client.protocol import error_message, out_of_files
from ollama_ops.client.transport import Failure, feed_lines, queue_wait_s, slow_line, status_kind, wait_until
from ollama_ops.core.bench.sse import SseDecoder, StreamError

_HEADERS = {"Content-Type": "application/json", "User-Agent": "sollama-bench"}


class AiohttpTransport:
    """Streamed requests over an open aiohttp session (owned by the caller); every chunk clocked at read time."""

    kernel_stamps = False

    def __init__(self, session: aiohttp.ClientSession, headers: dict[str, str] | None = None,
                 sse: bool = False) -> None:
        self.session = session
        self.reads = [0, 0]
        self.headers = _HEADERS | (headers or {})
        self.sse = sse

    async def exchange(self, path: str, body: bytes, times: list[float], sent: list[float | None],
                       due: float | None = None) -> dict[str, Any]:
        """POST one request (at `due`) and collect the arrival times of text chunks; returns the final object."""
        if due is not None:
            await wait_until(due)
        sent[0] = time.perf_counter()
        try:
            return await self._exchange(path, body, times, sent)
        except aiohttp.ClientConnectorError as exc:
            if out_of_files(exc):
                raise Failure("local", "too many open files") from None
            raise Failure("connect", f"cannot connect: {exc}") from None
        except TimeoutError:
            raise Failure("timeout", "no complete answer within the per-request timeout") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                ConnectionError) as exc:
            raise Failure("disconnect", f"connection broke mid-stream ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise Failure("disconnect", f"{type(exc).__name__}: {exc}") from None
        except StreamError as exc:
            raise Failure(exc.kind, str(exc)) from None

    async def _exchange(self, path: str, body: bytes, times: list[float], sent: list[float | None]) -> dict[str, Any]:
        async with self.session.post(path, data=body, headers=self.headers) as resp:
            wait = resp.headers.get("X-Queue-Wait-Ms")
            if wait is not None:
                sent[1] = queue_wait_s(wait)
            if resp.status >= 400:
                raw = await resp.read()
                raise Failure(status_kind(resp.status, raw), f"HTTP {resp.status}: {error_message(raw)}")
            if self.sse:
                decoder = SseDecoder()
                async for data in resp.content.iter_any():
                    self.reads[1] += 1
                    final = decoder.feed(data, time.perf_counter(), times)
                    if final is not None:
                        return final
                final = decoder.end(time.perf_counter(), times)
                if final is not None:
                    return final
                raise Failure("disconnect", "the stream ended before its final chunk")
            rest = b""
            async for data in resp.content.iter_any():
                self.reads[1] += 1
                rest, final = feed_lines(rest, data, time.perf_counter(), times)
                if final is not None:
                    return final
            if rest.strip():
                final = slow_line(rest, time.perf_counter(), times)
                if final is not None:
                    return final
        raise Failure("disconnect", "the stream ended before its final chunk")

    def close(self) -> None:
        """Nothing of its own to close: the session belongs to the caller."""
