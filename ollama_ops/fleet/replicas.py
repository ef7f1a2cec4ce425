"""Live gateway replicas and what each reports (address, in-flight, queue depth), kept in Redis with a TTL: a
replica beats every second or so; one that stops beating drops out after `ttl`. `/queue` and `status --fleet`
sum the queue depths of the live ones."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass
class ReplicaInfo:
    id: str
    address: str
    pid: int = 0
    started: float = 0.0
    in_flight: int = 0
    queued: int = 0
    seen: float = 0.0  # epoch seconds of its last beat


def _decode(raw: bytes | str | None) -> ReplicaInfo | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        names = {f.name for f in fields(ReplicaInfo)}
        return ReplicaInfo(**{k: v for k, v in data.items() if k in names})
    except (ValueError, TypeError):
        return None


class RedisReplicas:
    def __init__(self, url: str, *, namespace: str = "sollama", ttl: float = 5.0, client=None) -> None:
        import redis.asyncio as aioredis

        self.redis = client or aioredis.Redis.from_url(url)
        self.namespace, self.ttl = namespace, ttl

    @property
    def index(self) -> str:
        return f"{{{self.namespace}}}:replicas"

    def key(self, replica: str) -> str:
        return f"{{{self.namespace}}}:replica:{replica}"

    async def beat(self, info: ReplicaInfo) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key(info.id), json.dumps(asdict(info)), px=max(1, int(self.ttl * 1000)))
            pipe.sadd(self.index, info.id)
            await pipe.execute()

    async def leave(self, replica: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(replica))
            pipe.srem(self.index, replica)
            await pipe.execute()

    async def live(self) -> list[ReplicaInfo]:
        """The replicas that beat within `ttl`, by address; ids that expired are dropped from the index."""
        ids = sorted(x.decode() if isinstance(x, bytes) else x for x in await self.redis.smembers(self.index))
        if not ids:
            return []
        raws = await self.redis.mget([self.key(i) for i in ids])
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            await self.redis.srem(self.index, *gone)
        out = [info for raw in raws if (info := _decode(raw)) is not None]
        return sorted(out, key=lambda r: (r.address, r.id))

    async def queue_depth(self) -> int:
        return sum(r.queued for r in await self.live())

    async def close(self) -> None:
        await self.redis.aclose()


def live_sync(url: str, *, namespace: str = "sollama") -> list[ReplicaInfo]:
    """The live replicas, for `sollama status --fleet` (a plain synchronous read; no index clean-up)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        ids = sorted(x.decode() if isinstance(x, bytes) else x for x in client.smembers(f"{{{namespace}}}:replicas"))
        raws = client.mget([f"{{{namespace}}}:replica:{i}" for i in ids]) if ids else []
    finally:
        client.close()
    return sorted((info for raw in raws if (info := _decode(raw)) is not None), key=lambda r: (r.address, r.id))
