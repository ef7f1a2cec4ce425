"""Write docs/api/openapi.json: the gateway's OpenAPI document, as `sollama serve` serves it at /openapi.json.

    .venv/bin/python scripts/gen_openapi.py

tests/test_gateway_observability.py fails when the file differs from what the code generates (or serves).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "api" / "openapi.json"


def openapi_document() -> dict:
    """The document, built in-process from the gateway app (no socket, no upstream)."""
    from ollama_ops.gateway.app import build_app
    from ollama_ops.gateway.compose import build_gateway
    from ollama_ops.gateway.settings import GatewayConfig

    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(build_gateway(GatewayConfig(keys_path=Path(tmp) / "keys.json")))
        return json.loads(json.dumps(app.ops.openapi()))


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(render(openapi_document()), encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET.relative_to(ROOT)}\n")
