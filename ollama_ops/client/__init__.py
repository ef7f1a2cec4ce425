"""Ollama HTTP client: a sync flavour (httpx) and an async flavour (aiohttp), sharing one protocol module.

`aiohttp` is only imported by `ollama_ops.client.aio`, so importing this package stays cheap.
"""

from ollama_ops.client.protocol import GenerateRequest, GenerateResult
from ollama_ops.client.sync import OllamaClient

__all__ = ["GenerateRequest", "GenerateResult", "OllamaClient"]
