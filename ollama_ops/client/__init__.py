"""The Ollama client: `Client` (sync, httpx) and `AsyncClient` (async, aiohttp), sharing discovery, the protocol
module, the resilience parts and the request log. The CLI uses `Client`; the public names are re-exported by
`ollama_ops` (see docs/library.md).

`aiohttp` is only imported by `ollama_ops.client.aio`, so importing this package stays cheap.
"""

from ollama_ops.client.protocol import GenerateRequest, GenerateResult
from ollama_ops.client.sync import Client, OllamaClient

__all__ = ["Client", "GenerateRequest", "GenerateResult", "OllamaClient"]
