"""`sollama keys` and `sollama serve` through the real CLI: secrets shown once and stored hashed (0600), the
lifecycle of a key, bad input, and the refusal to serve beyond loopback without keys."""

from __future__ import annotations

import json
import stat

import pytest

from ollama_ops.core.gateway.keys import hash_secret
from ollama_ops.gateway.keystore import keys_path


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_create_prints_the_secret_once_and_stores_only_its_hash(sollama):
    secret = _ok(sollama("keys", "create", "ci", "--models", "smollm2*", "--rpm", "60", "--tpm", "1000",
                         "--concurrency", "2", "--daily-tokens", "50000", "--priority", "3", "--expires", "30d"))
    secret = secret.stdout.strip()
    assert secret.startswith("sk-sollama-") and "\n" not in secret
    path = keys_path()
    text = path.read_text()
    assert secret not in text and hash_secret(secret) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listing = json.loads(_ok(sollama("keys", "list", "--json")).stdout)["keys"]
    assert len(listing) == 1
    key = listing[0]
    assert (key["name"], key["models"], key["rpm"], key["tpm"], key["concurrency"], key["daily_tokens"],
            key["priority"], key["admin"], key["state"]) == ("ci", ["smollm2*"], 60, 1000, 2, 50000, 3, False,
                                                             "active")
    assert key["hint"] == secret[-4:] and key["expires"] is not None
    assert secret not in json.dumps(listing) and hash_secret(secret) not in json.dumps(listing)


def test_json_create_revoke_rotate(sollama):
    created = json.loads(_ok(sollama("keys", "create", "ops", "--admin", "--json")).stdout)
    assert created["secret"].startswith("sk-sollama-") and created["key"]["admin"] is True
    assert json.loads(_ok(sollama("keys", "revoke", "ops", "--json")).stdout)["revoked"] is not None
    table = _ok(sollama("keys", "list")).stdout
    assert "ops" in table and "revoked" in table and created["secret"] not in table
    rotated = json.loads(_ok(sollama("keys", "rotate", "ops", "--json")).stdout)
    assert rotated["secret"] != created["secret"] and rotated["key"]["state"] == "active"
    text = keys_path().read_text()
    assert hash_secret(rotated["secret"]) in text and hash_secret(created["secret"]) not in text


@pytest.mark.parametrize("args, code, text", [
    (["keys", "create", "bad name"], 2, "invalid key name"),
    (["keys", "create", "x", "--expires", "soon"], 2, "--expires"),
    (["keys", "create", "x", "--rpm", "0"], 2, "Invalid value"),
    (["keys", "revoke", "nobody"], 1, "no key named 'nobody'"),
    (["keys", "rotate", "nobody"], 1, "no key named 'nobody'"),
    (["serve", "--workers", "2"], 2, "--workers above 1 needs shared state"),
    (["serve", "--listen", "0.0.0.0:18999"], 3, "no API keys exist"),
    (["serve", "--listen", "http://x:1/p"], 3, "gateway.listen must be HOST:PORT"),
    (["serve", "--listen", "127.0.0.1:99999"], 3, "port must be 1-65535"),
])
def test_bad_input(sollama, args, code, text):
    result = sollama(*args)
    assert result.exit_code == code, result.output
    assert text in result.stderr and "Traceback" not in result.stderr


def test_duplicate_name_is_refused(sollama):
    _ok(sollama("keys", "create", "dup"))
    result = sollama("keys", "create", "dup")
    assert result.exit_code == 1 and "already exists" in result.stderr


def test_auth_off_beyond_loopback_is_refused(sollama, monkeypatch):
    monkeypatch.setenv("SOLLAMA_GATEWAY_AUTH", "off")
    _ok(sollama("keys", "create", "k"))
    result = sollama("serve", "--listen", "0.0.0.0:18999")
    assert result.exit_code == 3 and "gateway.auth is off" in result.stderr


def test_a_broken_keys_file_is_a_config_error(sollama):
    path = keys_path()
    path.write_text("{not json")
    result = sollama("keys", "list")
    assert result.exit_code == 3 and "is not valid" in result.stderr


def test_empty_list(sollama):
    assert "no keys" in _ok(sollama("keys", "list")).stdout
    assert json.loads(_ok(sollama("keys", "list", "--json")).stdout) == {"keys": []}


def test_help_does_not_import_the_gateway_stack():
    import subprocess
    import sys

    code = ("import sys; from ollama_ops.cli.app import main; sys.argv=['sollama','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad=[m for m in ('fastapi','uvicorn','aiohttp','prometheus_client','limits','starlette') if m in "
            "sys.modules]\nprint('LOADED', bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in done.stdout, done.stdout[-500:] + done.stderr


@pytest.mark.parametrize("value, parsed", [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("localhost", ("localhost", 8000)),
                                           (":9000", ("0.0.0.0", 9000)), ("[::1]:81", ("::1", 81)),
                                           ("0.0.0.0", ("0.0.0.0", 8000))])
def test_parse_listen(value, parsed):
    from ollama_ops.gateway.settings import parse_listen

    assert parse_listen(value) == parsed


def test_the_keys_file_view_reloads_on_change_and_keeps_the_last_good_keys(tmp_path):
    from ollama_ops.gateway.keystore import KeyFile, KeyRing

    class Ticks:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    path = tmp_path / "keys.json"
    keys = KeyFile(path, clock=lambda: 1_000.0)
    secret = keys.create("team-a").secret
    ticks = Ticks()
    ring = KeyRing(path, clock=lambda: 1_000.0, monotonic=ticks)
    assert ring.lookup(secret).name == "team-a" and len(ring) == 1 and ring.usable_count() == 1
    keys.revoke("team-a")
    ticks.now += 0.5
    assert ring.lookup(secret) is not None  # not checked again yet: within its second
    ticks.now += 0.6
    assert ring.lookup(secret) is None and ring.any_keys and ring.usable_count() == 0
    new = keys.rotate("team-a").secret
    path.write_text("{broken", encoding="utf-8")  # a broken file: the last good keys stay
    ticks.now += 1.1
    assert ring.lookup(new) is None and ring.lookup(secret) is None and len(ring) == 1 and ring.errors == 1
    path.unlink()  # no file: no keys
    ticks.now += 1.1
    assert ring.lookup(secret) is None and not ring.any_keys and ring.errors == 1
