"""Lua scripts on Redis, auto-pipelined: every script call made in the same event-loop tick goes out as one
pipeline (one write, one read, one connection from the pool), not one round trip each.

Measured (benchmarks/fleet_scaling.py --only decisions): the Python client's CPU per round trip, not Redis,
bounds a replica's admission decisions (a bare PING loop with 32 callers: ~9,700/s on the development machine).
Pipelined, the per-call cost is packing one command and parsing one reply (both in C: hiredis); a gateway under
load has many requests deciding in the same tick, so they share one round trip. A lone call costs the same as before
plus one `call_soon` hop.

A script is sent by its SHA1 (EVALSHA); after a Redis restart (NOSCRIPT) the script is loaded and the calls that
missed it are sent again, once. The pipeline is not a transaction: each script is atomic on its own, which is
all the callers rely on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

_MAX_BATCH = 256


class Script:
    """A Lua script's source and SHA1 (what EVALSHA needs)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class ScriptBatch:
    def __init__(self, client: Any) -> None:
        self.redis = client
        self._pending: list[tuple[Script, Sequence[Any], Sequence[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.round_trips = 0

    def submit(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue one call; its future gets the script's reply (or the error) once its batch has been sent. The
        call runs even when the caller stops waiting (a caller that may be cancelled should `shield` it and undo
        what the script did: see `RedisSlots.try_acquire`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    async def run(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self.submit(script, keys, args)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(pending), _MAX_BATCH):
            task = loop.create_task(self._send(pending[start:start + _MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, calls: list) -> list[Any]:
        """One round trip: the calls packed by hiredis (C) into one write, then one reply read per call (an
        error reply is that call's result; the connection stays in step)."""
        import hiredis
        from redis.exceptions import ResponseError

        self.round_trips += 1
        self.calls += len(calls)
        packed = b"".join(hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
                          for script, keys, args, _ in calls)
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed)
            replies: list[Any] = []
            for _ in calls:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()  # a half-read pipeline must not be reused
            raise
        finally:
            await pool.release(conn)
        return replies

    async def _send(self, calls: list) -> None:
        from redis.exceptions import NoScriptError

        try:
            replies = await self._execute(calls)
            missed = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missed:  # Redis restarted (or flushed its scripts): load them and send those calls again, once
                for script in {calls[i][0].sha: calls[i][0] for i in missed}.values():
                    await self.redis.script_load(script.source)
                again = await self._execute([calls[i] for i in missed])
                for i, reply in zip(missed, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:  # the connection failed: every call of the batch gets the error
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), reply in zip(calls, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def close(self) -> None:
        """Send what is queued and wait for batches on their way (their callers are owed an answer)."""
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
