"""Key changes seen by every replica within a second: a revoke (or rotate, or a new key) bumps a version counter
in Redis and publishes on a channel. Each replica's watcher listens on the channel and, in case a message is lost
(a reconnect), also reads the version every `poll` seconds; either way it reloads its keys."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


def version_key(namespace: str) -> str:
    return f"{{{namespace}}}:keys:version"


def channel(namespace: str) -> str:
    return f"{{{namespace}}}:keys:changed"


def announce_sync(url: str, name: str, *, namespace: str = "sollama") -> int:
    """Tell every replica that key `name` changed (used by `sollama keys` after it wrote the store); returns the
    new version."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.incr(version_key(namespace))
        pipe.publish(channel(namespace), name)
        version, _ = pipe.execute()
        return int(version)
    finally:
        client.close()


class RedisRevocations:
    """Announce key changes and watch for them (one per replica)."""

    def __init__(self, url: str, *, namespace: str = "sollama", poll: float = 0.25, client=None) -> None:
        import redis.asyncio as aioredis

        self.redis = client or aioredis.Redis.from_url(url)
        self.namespace, self.poll = namespace, poll
        self.version: int | None = None
        self.changes_seen = 0
        self.errors = 0

    async def announce(self, name: str) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(version_key(self.namespace))
            pipe.publish(channel(self.namespace), name)
            version, _ = await pipe.execute()
        return int(version)

    async def current_version(self) -> int:
        raw = await self.redis.get(version_key(self.namespace))
        return int(raw or 0)

    async def watch(self, on_change: Callable[[], object | Awaitable[object]]) -> None:
        """Call `on_change` after every announced change (at least once per change; a burst may coalesce). Runs
        until cancelled; Redis errors are counted and retried after a short pause."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel(self.namespace))
                if self.version is None:
                    self.version = await self.current_version()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll)
                    version = await self.current_version()
                    if message is not None or version != self.version:
                        self.version = version
                        self.changes_seen += 1
                        result = on_change()
                        if inspect.isawaitable(result):
                            await result
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: keep the last keys, try again shortly
                self.errors += 1
                await asyncio.sleep(self.poll)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: S110 - the connection is already gone
                    pass

    async def close(self) -> None:
        await self.redis.aclose()
