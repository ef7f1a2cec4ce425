"""Which key store `sollama keys` edits: PostgreSQL when `gateway.store` names it, else the keys file. With
`gateway.state` (Redis), every edit is also announced, so every replica reloads its keys at once (a revoke is
refused everywhere within a second, not at the next file or version check)."""

from __future__ import annotations

from typing import Any


def redact(url: str | None) -> str | None:
    """A state/store URL without its password, for messages (`redis://:secret@h:6379/0` → `redis://h:6379/0`)."""
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + '@' if user else ''}{host}"


class _Announcing:
    """A key store whose edits are announced to every replica through Redis."""

    def __init__(self, inner: Any, state: str) -> None:
        self.inner, self.state = inner, state

    def _announce(self, name: str) -> None:
        from ollama_ops.fleet.revocation import announce_sync

        try:
            announce_sync(self.state, name)
        except Exception:  # noqa: BLE001 - Redis away: replicas still see it at their next check
            pass

    def list(self):
        return self.inner.list()

    def create(self, name: str, **options: Any):
        created = self.inner.create(name, **options)
        self._announce(name)
        return created

    def revoke(self, name: str):
        record = self.inner.revoke(name)
        self._announce(name)
        return record

    def rotate(self, name: str):
        created = self.inner.rotate(name)
        self._announce(name)
        return created


def key_admin(settings: Any):
    gw = settings.gateway
    if gw.store:
        from ollama_ops.fleet.pgstore import PgKeys

        store: Any = PgKeys(gw.store)
    else:
        from ollama_ops.gateway.keystore import KeyFile

        store = KeyFile()
    return _Announcing(store, gw.state) if gw.state else store
