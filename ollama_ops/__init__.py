"""sollama: the operations toolkit for a shared Ollama daemon."""

__version__ = "0.1.0"
