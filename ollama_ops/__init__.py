"""sollama: the operations toolkit for a shared Ollama daemon, and a Python library for talking to it.

    from ollama_ops import Client, AsyncClient, ensure_running

The public names are imported on first use (PEP 562), so `import ollama_ops` stays cheap: the CLI imports this
package on every call, and httpx (~110 ms) or aiohttp (~290 ms) load only when a client is made.
See docs/library.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ollama_ops.client.aio import AsyncClient
    from ollama_ops.client.discovery import Discovery
    from ollama_ops.client.ensure import EnsureResult, ensure_running
    from ollama_ops.client.protocol import GenerateRequest, GenerateResult
    from ollama_ops.client.resilience import CircuitBreaker
    from ollama_ops.client.sync import Client, ClientInfo
    from ollama_ops.core.ndjson import FinalChunk, TextChunk, Timings
    from ollama_ops.errors import (
        OllamaError,
        QueueFull,
        RequestTimeout,
        ServerBusy,
        ServerUnreachable,
        SollamaError,
    )

_LAZY = {
    "Client": "ollama_ops.client.sync",
    "ClientInfo": "ollama_ops.client.sync",
    "AsyncClient": "ollama_ops.client.aio",
    "ensure_running": "ollama_ops.client.ensure",
    "EnsureResult": "ollama_ops.client.ensure",
    "Discovery": "ollama_ops.client.discovery",
    "CircuitBreaker": "ollama_ops.client.resilience",
    "GenerateRequest": "ollama_ops.client.protocol",
    "GenerateResult": "ollama_ops.client.protocol",
    "TextChunk": "ollama_ops.core.ndjson",
    "FinalChunk": "ollama_ops.core.ndjson",
    "Timings": "ollama_ops.core.ndjson",
    "SollamaError": "ollama_ops.errors",
    "OllamaError": "ollama_ops.errors",
    "QueueFull": "ollama_ops.errors",
    "RequestTimeout": "ollama_ops.errors",
    "ServerBusy": "ollama_ops.errors",
    "ServerUnreachable": "ollama_ops.errors",
}

__all__ = [  # noqa: RUF022 - the public names first, then the types they return, then the errors
    "__version__", "Client", "AsyncClient", "ensure_running", "ClientInfo", "EnsureResult", "Discovery",
    "CircuitBreaker", "GenerateRequest", "GenerateResult", "TextChunk", "FinalChunk", "Timings", "SollamaError",
    "OllamaError", "QueueFull", "RequestTimeout", "ServerBusy", "ServerUnreachable",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ollama_ops' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
