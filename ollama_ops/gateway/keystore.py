"""The API keys file: JSON records without secrets (only sha256 hashes), 0600, replaced atomically.

`sollama keys` edits it; a running gateway notices the change (mtime/size/inode, checked at most once a
second) and reloads, so a revoke takes effect without a restart. `KeyView` is the gateway's lookup over any key
store (this file's `KeyRing`, the fleet's `PgKeyRing`): each gives only its loading step.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ollama_ops import paths
from ollama_ops.core.gateway.keys import KeyRecord, hash_secret, matches_hash, new_secret, valid_name
from ollama_ops.errors import ConfigError, SollamaError, UsageError

_FIELDS = {f.name for f in fields(KeyRecord)}
_ANY = object()  # a stamp no store has: `reload` loads whatever the stamp says


def keys_path() -> Path:
    return paths.data_dir(create=True) / "gateway-keys.json"


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600 (the temp file is created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_records(path: Path) -> list[KeyRecord]:
    """The records in the keys file ([] when it does not exist); ConfigError (exit 3) when it is unreadable."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the keys file {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw)
        return [KeyRecord(**{k: v for k, v in item.items() if k in _FIELDS}) for item in data["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the keys file {path} is not valid: {exc}",
                          hint="restore it from a backup or move it away and create new keys") from exc


def save_records(path: Path, records: list[KeyRecord]) -> None:
    _write_private(path, json.dumps({"version": 1, "keys": [asdict(r) for r in records]}, indent=1) + "\n")


@dataclass
class CreatedKey:
    """What `keys create` / `keys rotate` return: the record and the secret, shown once."""

    record: KeyRecord
    secret: str


class KeyFile:
    """Edits of the keys file (the `sollama keys` service)."""

    def __init__(self, path: Path | None = None, clock=time.time) -> None:
        self.path = path or keys_path()
        self.clock = clock

    def list(self) -> list[KeyRecord]:
        return load_records(self.path)

    def create(self, name: str, *, models: builtins.list[str] | None = None, rpm: int | None = None,
               tpm: int | None = None, concurrency: int | None = None, daily_tokens: int | None = None,
               priority: int = 1, admin: bool = False, expires_in: float | None = None) -> CreatedKey:
        if not valid_name(name):
            raise UsageError(f"invalid key name {name!r:.70}: use 1-64 letters, digits, '.', '_' or '-'")
        for label, value in (("--rpm", rpm), ("--tpm", tpm), ("--concurrency", concurrency),
                             ("--daily-tokens", daily_tokens), ("--priority", priority)):
            if value is not None and value < 1:
                raise UsageError(f"{label} must be at least 1, got {value}")
        records = self.list()
        if any(r.name == name for r in records):
            raise SollamaError(f"a key named '{name}' already exists",
                               hint=f"`sollama keys rotate {name}` gives it a new secret")
        now = self.clock()
        secret = new_secret()
        record = KeyRecord(name=name, hash=hash_secret(secret), hint=secret[-4:], created=now,
                           models=list(models or []), rpm=rpm, tpm=tpm, concurrency=concurrency,
                           daily_tokens=daily_tokens, priority=priority, admin=admin,
                           expires=now + expires_in if expires_in else None)
        save_records(self.path, [*records, record])
        return CreatedKey(record, secret)

    def _find(self, records: builtins.list[KeyRecord], name: str) -> KeyRecord:
        for record in records:
            if record.name == name:
                return record
        raise SollamaError(f"no key named '{name}'", hint="see `sollama keys list`")

    def revoke(self, name: str) -> KeyRecord:
        records = self.list()
        record = self._find(records, name)
        if record.revoked is None:
            record.revoked = self.clock()
            save_records(self.path, records)
        return record

    def rotate(self, name: str) -> CreatedKey:
        records = self.list()
        record = self._find(records, name)
        secret = new_secret()
        record.hash, record.hint, record.revoked = hash_secret(secret), secret[-4:], None
        save_records(self.path, records)
        return CreatedKey(record, secret)


class KeyView:
    """The gateway's keys: lookups by secret in memory, over the records some store loads. A subclass gives only
    the loading step, `_load(known)`: the store's current stamp (its version) and its records, or None for the
    records when the stamp is still `known`. The view asks at most every `interval` seconds (`refresh`, from
    `lookup`) or when told (`reload`); a store that cannot be read keeps the last good keys (counted in
    `errors`)."""

    interval = 1.0

    def __init__(self, *, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 interval: float | None = None) -> None:
        self.clock, self.monotonic = clock, monotonic
        if interval is not None:
            self.interval = interval
        self._by_hash: dict[str, KeyRecord] = {}
        self._by_name: dict[str, KeyRecord] = {}
        self.stamp: object = None
        self._checked = -1e9
        self.errors = 0
        self.reload()

    def _load(self, known: object) -> tuple[object, builtins.list[KeyRecord] | None]:
        raise NotImplementedError

    def _install(self, stamp: object, records: builtins.list[KeyRecord] | None) -> None:
        if records is not None:
            self._by_hash = {r.hash: r for r in records}
            self._by_name = {r.name: r for r in records}
        self.stamp = stamp
        self._checked = self.monotonic()

    def reload(self) -> None:
        """Load the keys now (whatever the stamp says); the store's errors reach the caller."""
        self._install(*self._load(_ANY))

    def refresh(self) -> None:
        """Reload when the store's stamp moved (asked at most every `interval` s); keep the last good keys when the
        store cannot be read."""
        now = self.monotonic()
        if now - self._checked < self.interval:
            return
        self._checked = now
        try:
            self._install(*self._load(self.stamp))
        except Exception:  # the store is away or broken: keep serving the last good keys
            self.errors += 1

    @property
    def any_keys(self) -> bool:
        return bool(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def usable_count(self) -> int:
        now = self.clock()
        return sum(1 for r in self._by_name.values() if r.usable(now))

    def lookup(self, secret: str | None) -> KeyRecord | None:
        """The usable key with this secret, else None (unknown, revoked and expired keys alike)."""
        if not secret:
            return None
        self.refresh()
        record = self._by_hash.get(hash_secret(secret))
        if record is None or not matches_hash(secret, record.hash) or not record.usable(self.clock()):
            return None
        return record


class KeyRing(KeyView):
    """The keys file: reloaded when it changed (mtime, size, inode), checked at most once a second."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        super().__init__(clock=clock, monotonic=monotonic)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self, known: object) -> tuple[object, builtins.list[KeyRecord] | None]:
        stamp = self._file_stamp()
        if stamp == known:
            return stamp, None
        return stamp, load_records(self.path) if stamp else []
