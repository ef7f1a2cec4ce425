"""API keys: the secret's shape, its hash, constant-time checks, model patterns and expiry (pure)."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "sk-sollama-"
SECRET_BYTES = 32  # 256 bits of entropy
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EXPIRES_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class KeyRecord:
    """One API key as stored: everything but the secret (only its sha256 is kept)."""

    name: str
    hash: str
    hint: str  # the last 4 characters of the secret, to tell keys apart in listings
    created: float
    models: list[str] = field(default_factory=list)  # fnmatch patterns; empty = every model
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    daily_tokens: int | None = None
    priority: int = 1
    admin: bool = False
    expires: float | None = None
    revoked: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


def new_secret() -> str:
    """A fresh secret: the prefix and 32 random bytes, URL-safe base64 (43 characters)."""
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The stored form. A plain sha256 is enough: the secret has 256 bits of entropy, so there is nothing for a
    slow hash to protect against."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches_hash(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))


def parse_expires(text: str) -> float:
    """Seconds from '30d', '12h', '90m', '2w', '45s' (a whole number and one unit). Raises ValueError."""
    m = _EXPIRES_RE.fullmatch(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"expiry must be a positive number and a unit (s, m, h, d, w) like '30d', got {text!r:.40}")
    return int(m.group(1)) * _UNIT[m.group(2)]


def normalize_model(name: str) -> str:
    """Ollama's own naming: a model without a tag is `:latest`."""
    name = name.strip()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def model_allowed(patterns: list[str], model: str) -> bool:
    """Whether a key with these patterns may use `model`. No patterns = every model. A pattern without a tag
    matches every tag (`smollm2` allows `smollm2:135m`); patterns are shell-style (`llama3*`, `*:7b`)."""
    if not patterns:
        return True
    full = normalize_model(model)
    bare = full.rsplit(":", 1)[0]
    for pattern in patterns:
        p = pattern.strip()
        if not p:
            continue
        if fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(model, p) or fnmatch.fnmatchcase(bare, p):
            return True
        if ":" not in p.rsplit("/", 1)[-1] and fnmatch.fnmatchcase(full, p + ":*"):
            return True
    return False


def extract_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The presented secret from `Authorization: Bearer …` or `X-API-Key` (Bearer wins)."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None
