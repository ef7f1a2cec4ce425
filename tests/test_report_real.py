"""Two short real benches against SmolLM2 through the CLI, then `report --compare` of them."""

from __future__ import annotations

import json

import pytest


@pytest.mark.ollama
@pytest.mark.slow
def test_compare_two_real_benches(sollama, ollama):
    for _ in range(2):
        bench = sollama("--host", ollama.host, "bench", "-m", ollama.model, "--requests", "3", "--max-tokens", "8",
                        "--json")
        assert bench.exit_code == 0, bench.output
    listed = json.loads(sollama("report", "--json").stdout)
    assert [r["figures"]["ok"] for r in listed["runs"]] == [3, 3]

    result = sollama("report", "--compare", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ids = [r["id"] for r in listed["runs"]]
    assert doc["base"]["run_ids"] == [ids[0]] and doc["candidate"]["run_ids"] == [ids[1]]
    metrics = {m["key"]: m for m in doc["metrics"]}
    assert metrics["ttft_p50"]["base"] > 0 and metrics["ttft_p50"]["candidate"] > 0
    assert metrics["output_throughput"]["change"] is not None
    assert all(m["verdict"] in ("improved", "regressed", "no change", "n/a") for m in doc["metrics"])

    md = sollama("report", "--compare", "--format", "md")
    assert md.exit_code == 0, md.output
    assert "| METRIC | BASE | CANDIDATE |" in md.stdout

    shown = sollama("report", str(ids[1]))
    assert shown.exit_code == 0, shown.output
    assert "3 ok, 0 failed" in shown.stdout
