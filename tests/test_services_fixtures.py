"""The real-service fixtures themselves: each server answers on loopback, runs as the process we started, and each
test's PostgreSQL database / Redis starts empty."""

from __future__ import annotations

import psutil


def test_redis_fixture(redis_server, redis_url):
    import redis

    assert redis_url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("x", "1")
        assert client.get("x") == b"1"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        client.close()
    proc = psutil.Process(redis_server.pid)
    assert "redis-server" in proc.name() and f":{redis_server.port}" in " ".join(proc.cmdline())


def test_postgres_fixture(postgres_server, postgres_url):
    import psycopg

    assert postgres_url.startswith(f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/t_")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT sum(v) FROM t").fetchone() == (3,)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    proc = psutil.Process(postgres_server.pid)
    assert proc.name() == "postgres" and str(postgres_server.port) in proc.cmdline()
