"""The gateway's dashboard, alert rules, scrape config and API reference checked against a running gateway: every
metric and label a PromQL expression in docs/grafana/ and docs/prometheus/ names is one `sollama serve` actually
exports, promtool accepts the rules (and their unit tests), the config and the exposition, and
docs/api/openapi.json is what the gateway serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI, ROOT
from tests.gateway_helpers import curl, gateway, make_key

DASHBOARD = ROOT / "docs" / "grafana" / "sollama-gateway.json"
PROM = ROOT / "docs" / "prometheus"
OPENAPI = ROOT / "docs" / "api" / "openapi.json"
# Series Prometheus adds itself, and the labels it attaches at scrape time (scrape config: job, instance, service).
SYNTHETIC = {"up"}
SCRAPE_LABELS = {"job", "instance", "service", "le"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is required under CI (Debian's prometheus package; .ci/run installs it)")
        pytest.skip("no promtool (apt-get install prometheus)")
    return found


def _grafana_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict) and query.get("query", "").startswith("label_values("):
            inner = query["query"][len("label_values("):-1]
            exprs.append(inner.rsplit(",", 1)[0])
    return exprs


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((PROM / "sollama-gateway.rules.yml").read_text(encoding="utf-8"))
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by values (so promtool can parse it)."""
    return (expr.replace("$__rate_interval", "5m").replace('"$instance"', '".*"').replace("$slots", "1"))


def names_and_labels(expr: str) -> tuple[set[str], set[str]]:
    """Metric names and label names one PromQL expression uses (strings, ranges and numbers removed first)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', _concrete(expr))
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels |= {w.strip() for w in clause.split(",") if w.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    names = {m.group(1) for m in re.finditer(r"([a-zA-Z_:][\w:]*)\s*(\()?", text)
             if m.group(2) is None and m.group(1).lower() not in KEYWORDS}
    return names, labels


def test_expression_parsing() -> None:
    names, labels = names_and_labels('histogram_quantile(0.95, sum by (instance, le) (rate(x_bucket{code=~"5.."}'
                                     '[$__rate_interval]))) / on(instance) y > bool 1')
    assert names == {"x_bucket", "y"} and labels == {"instance", "le", "code"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, object]:
    """What a running gateway exports after some traffic: sample names → label names, the exposition text, and the
    OpenAPI document it serves."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.stub_ollama import StubOllama

    home = tmp_path_factory.mktemp("gw-obs")
    admin = make_key(home, "ops", "--admin")
    user = make_key(home, "app", "--models", "stub-*")
    tight = make_key(home, "tight", "--rpm", "1")
    with StubOllama() as stub:
        stub.configure(tokens=3)
        with gateway(stub.url, home, "--slots", "3", metrics_token="scrape-me") as gw:
            body = {"model": "stub-model", "prompt": "hi", "stream": True}
            assert curl(gw.url + "/api/generate", "-H", f"X-API-Key: {user}", data=body).status == 200
            codes = [curl(gw.url + "/api/generate", "-H", f"X-API-Key: {tight}", data=body).status for _ in range(2)]
            assert codes == [200, 429]
            assert curl(gw.url + "/readyz").status == 200
            scraped = curl(gw.url + "/metrics", "-H", "Authorization: Bearer scrape-me")
            assert scraped.status == 200, scraped.body
            served = curl(gw.url + "/openapi.json", "-H", f"X-API-Key: {admin}")
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scraped.body):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return {"series": series, "text": scraped.body, "openapi": json.loads(served.body), "upstream": stub.url}


def test_slots_gauge_is_the_upstreams_slots(exported) -> None:
    """`sollama_gateway_slots{upstream}` carries --slots for the one upstream (the dashboard's slots line)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = [(s.labels, s.value) for f in text_string_to_metric_families(exported["text"])  # type: ignore[arg-type]
               for s in f.samples if s.name == "sollama_gateway_slots"]
    assert samples == [({"upstream": str(exported["upstream"]).rstrip("/")}, 3.0)]


@pytest.mark.parametrize("source, exprs", [("grafana", _grafana_exprs()), ("rules", _rule_exprs())])
def test_every_promql_name_is_exported(exported, source, exprs) -> None:
    series: dict[str, set[str]] = exported["series"]  # type: ignore[assignment]
    assert exprs
    for expr in exprs:
        names, labels = names_and_labels(expr)
        unknown = names - set(series) - SYNTHETIC
        assert not unknown, f"{source}: {expr!r} names {sorted(unknown)}, not exported (have: {sorted(series)})"
        known = set().union(*(series.get(n, set()) for n in names)) | SCRAPE_LABELS
        assert labels <= known, f"{source}: {expr!r} uses labels {sorted(labels - known)} its metrics lack"


def test_the_dashboard_covers_every_gateway_metric(exported) -> None:
    from ollama_ops.gateway.metrics import NAMES

    used = set().union(*(names_and_labels(e)[0] for e in _grafana_exprs()))
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    assert not set(NAMES) - bases, f"metrics without a panel: {sorted(set(NAMES) - bases)}"


def test_promtool_accepts_rules_config_and_exposition(exported, tmp_path) -> None:
    tool = promtool()

    def run(*args: str, stdin: str | None = None, cwd: Path = PROM) -> None:
        done = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"

    run("check", "rules", "sollama-gateway.rules.yml")
    run("test", "rules", "sollama-gateway.rules.test.yml")
    run("check", "metrics", stdin=exported["text"])  # type: ignore[arg-type]
    # the scrape config, with its token file made real
    token = tmp_path / "token"
    token.write_text("scrape-me")
    config = (PROM / "prometheus.yml").read_text().replace("/etc/prometheus/sollama-metrics-token", str(token))
    shutil.copy(PROM / "sollama-gateway.rules.yml", tmp_path)
    (tmp_path / "prometheus.yml").write_text(config)
    run("check", "config", "prometheus.yml", cwd=tmp_path)
    # the dashboard's expressions parse as PromQL (as recording rules, Grafana variables filled in)
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr{i}", "expr": _concrete(e)}
                                                         for i, e in enumerate(_grafana_exprs())]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    run("check", "rules", "dashboard.rules.yml", cwd=tmp_path)


def test_openapi_reference_matches_the_gateway(exported) -> None:
    from scripts.gen_openapi import openapi_document

    generated = openapi_document()
    on_disk = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert generated == on_disk, "docs/api/openapi.json is stale: run `.venv/bin/python scripts/gen_openapi.py`"
    assert exported["openapi"] == on_disk  # what the running gateway serves
    assert {"/api/generate", "/v1/chat/completions", "/metrics", "/queue"} <= set(on_disk["paths"])
