"""The fleet: one gateway over several Ollama hosts, several gateway replicas sharing state.

Shared, fast-changing state lives in Redis (`gateway.state: redis://…`): per-host slot leases (`slots`), key
revocations (`revocation`), live replicas and their queue depth (`replicas`); the `limits` library keeps the
rate-limit windows there too. Keys and usage live in PostgreSQL (`gateway.store: postgresql://…`, `pgstore`).
The single-box default needs neither: `LocalSlots` and the gateway's in-process/SQLite parts.
Redis and psycopg are imported only by these modules, and only when a URL names them.
"""
