"""The gateway depends on the dispatcher interface, not on the fleet: only the composition root imports
`ollama_ops.fleet`, and the fleet's dispatcher imports nothing of the gateway's request path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ollama_ops.fleet.runtime import Fleet
from ollama_ops.gateway.compose import build_gateway
from ollama_ops.gateway.dispatch import SingleHost
from ollama_ops.gateway.settings import GatewayConfig

PKG = Path(__file__).resolve().parents[1] / "ollama_ops"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((PKG / "gateway").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PKG / "gateway")))
def test_only_the_composition_root_imports_the_fleet(path):
    fleet = {name for name in _imports(path) if name.startswith("ollama_ops.fleet")}
    if path.name == "compose.py":
        assert "ollama_ops.fleet.runtime" in fleet
    else:
        assert fleet == set(), f"{path.name} imports {fleet}"


def test_the_fleet_does_not_import_the_request_path():
    imported = _imports(PKG / "fleet" / "runtime.py")
    assert "ollama_ops.gateway.proxy" not in imported
    assert "ollama_ops.gateway.app" not in imported


def test_the_composition_root_picks_one_host_or_the_fleet(tmp_path):
    one = build_gateway(GatewayConfig(keys_path=tmp_path / "keys.json", upstream="http://127.0.0.1:9"))
    assert type(one.dispatch) is SingleHost and one.dispatch.upstream.base_url == "http://127.0.0.1:9"
    many = build_gateway(GatewayConfig(keys_path=tmp_path / "keys.json",
                                       upstreams=[("http://127.0.0.1:9", 2), ("http://127.0.0.1:10", 3)]))
    assert type(many.dispatch) is Fleet
    assert [(h.url, h.slots) for h in many.dispatch.pool.hosts] == [("http://127.0.0.1:9", 2),
                                                                    ("http://127.0.0.1:10", 3)]
    assert many.admission.slots == 5
