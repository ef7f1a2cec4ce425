"""`--html FILE` on `report RUN`, `report --compare` and `bench`: one self-contained page (checked here as
text; `test_html_browser.py` opens it in Chromium)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from ollama_ops.core import chart_data
from ollama_ops.edges.store import Store
from ollama_ops.services.html_report import SERIES_CAP
from tests.html_helpers import add_run, add_sweep, chart_specs, drawable


def _page(sollama, tmp_path: Path, *args: str) -> tuple[str, Path]:
    path = tmp_path / "out.html"
    result = sollama("report", *args, "--html", str(path))
    assert result.exit_code == 0, result.output
    assert f"wrote the HTML report to {path}" in result.stderr
    return path.read_text(encoding="utf-8"), path


def test_run_page_is_self_contained_with_tables_and_charts(sollama, tmp_path):
    with Store() as store:
        run = add_run(store, n=120, failed=3, label="nightly")
    page, path = _page(sollama, tmp_path, str(run))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # nothing fetched at view time: no external script, stylesheet, image or font
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)
    assert "url(" not in page.split("<script>")[0]  # no CSS url() either
    assert "uPlot" in page and "The MIT License" not in page  # the library inline, its licence shipped beside it
    # the tables carry the figures as text (readable without JavaScript)
    for text in ("smollm2:135m", "nightly", "0.23.2", "120 ok, 3 failed", "kernel", "Test CPU", "<td>ttft</td>",
                 "prompt eval"):
        assert text in page
    specs = {s["id"]: s for s in chart_specs(page)}
    assert list(specs) == ["ttft", "e2el", "itl", "over-time", "breakdown"]
    # histogram counts add up to the samples: 120 TTFT/E2EL values, 120 × 15 ITL gaps
    assert sum(specs["ttft"]["series"][0]["y"]) == 120
    assert sum(specs["e2el"]["series"][0]["y"]) == 120
    assert sum(specs["itl"]["series"][0]["y"]) == 120 * 15
    assert [drawable(s) for s in specs["over-time"]["series"]] == [120, 120]
    # stacked breakdown: each bar's top is the sum of the parts below it (series listed tallest first)
    tops = specs["breakdown"]["series"]
    assert [s["role"] for s in tops] == ["part:queue", "part:wait", "part:eval", "part:prompt_eval", "part:load"]
    for i in range(len(tops[0]["y"])):
        parts = sum(s["legend"][i] for s in tops)
        assert tops[0]["y"][i] == pytest.approx(parts, rel=1e-4)


def test_ten_thousand_requests_stay_under_two_megabytes(sollama, tmp_path):
    with Store() as store:
        run = add_run(store, n=10_000, gaps_per_request=31)
    page, path = _page(sollama, tmp_path, str(run))
    size = path.stat().st_size
    assert size < 2 * 2**20, size
    specs = {s["id"]: s for s in chart_specs(page)}
    assert SERIES_CAP // 2 <= len(specs["over-time"]["x"]) <= SERIES_CAP
    assert "of 10000 requests, evenly spread" in page
    assert sum(specs["itl"]["series"][0]["y"]) == 10_000 * 31
    assert len(specs["itl"]["x"]) == chart_data.MAX_BINS


def test_markup_in_stored_text_is_escaped(sollama, tmp_path):
    evil = "</script><script>alert(1)</script>"
    with Store() as store:
        run = add_run(store, n=20, label=evil)
    page, _ = _page(sollama, tmp_path, str(run))
    assert evil not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 3  # the data island, uPlot, the glue


def test_sweep_page_marks_the_knee_and_the_slo(sollama, tmp_path):
    with Store() as store:
        ids = add_sweep(store, slo_e2el=0.45)
    page, _ = _page(sollama, tmp_path, str(ids[0]))
    sweep = {s["id"]: s for s in chart_specs(page)}["sweep"]
    roles = [s["role"] for s in sweep["series"]]
    assert roles == ["ttft", "e2el", "slo", "knee"]
    slo = sweep["series"][2]
    assert slo["y"] == [450.0, 450.0] and slo["label"] == "SLO E2EL 450 ms"
    # the knee is the highest step that met the SLO (attainment ≥ 90%, still gaining throughput): c=4
    knee = sweep["series"][3]
    assert knee["label"].startswith(f"knee: c=4 n=40 max_tokens=16 (run {ids[2]})")
    assert knee["x"] == [sweep["series"][1]["x"][2]] and knee["y"] == [sweep["series"][1]["y"][2]]
    assert re.search(rf'<tr class="knee"><td>#{ids[2]}</td>', page)
    assert page.count('<tr class="knee">') == 1


def test_sweep_page_knee_at_saturation_is_the_step_before(sollama, tmp_path):
    # output throughput ~ concurrency / scale: 1, 1.8, 1.9 (+5%: saturated); every step meets the SLO, so the
    # knee is the step before the one that no longer paid off, as `bench --sweep` scores it (core.bench.sweep)
    with Store() as store:
        ids = [add_run(store, n=40, scale=scale, seed=20 + i, concurrency=c, sweep_id="sat", step=i,
                       summary={"slo": {"e2el": 5.0}, "slo_attainment": 1.0})
               for i, (c, scale) in enumerate([(1, 1.0), (2, 1.1), (4, 2.1)])]
    page, _ = _page(sollama, tmp_path, str(ids[0]))
    knee = {s["id"]: s for s in chart_specs(page)}["sweep"]["series"][-1]
    assert knee["role"] == "knee" and knee["label"].startswith(f"knee: c=2 n=40 max_tokens=16 (run {ids[1]})")
    assert re.search(rf'<tr class="knee"><td>#{ids[1]}</td>', page)
    assert page.count('<tr class="knee">') == 1


def test_compare_page_colours_each_gated_metric_by_verdict(sollama, tmp_path):
    with Store() as store:
        add_run(store, seed=1, label="main")
        add_run(store, seed=2, scale=1.3, label="pr")
    path = tmp_path / "cmp.html"
    result = sollama("report", "--compare", "label:main", "label:pr", "--fail-on-regression", "--html", str(path))
    assert result.exit_code == 6, result.output  # the gate still fails, after the page is written
    page = path.read_text(encoding="utf-8")
    assert "Performance regressed" in page
    spec = chart_specs(page)[0]
    assert spec["id"] == "compare" and spec["facets"]
    intervals = [s for s in spec["series"] if s["label"].endswith("95% interval")]
    assert [s["label"].removesuffix(" 95% interval") for s in intervals] == spec["xTicks"]
    assert {s["role"] for s in intervals} == {"regressed"}  # 30% slower on every gated metric
    for s in intervals:  # the whole interval beyond the threshold, on the bad side of each metric
        lo, hi = s["y"]
        assert (hi < -5) if s["label"].startswith("Output tok/s") else (lo > 5), s
    thresholds = [s["y"] for s in spec["series"] if s["role"] == "threshold"]
    assert thresholds == [[5.0, 5.0], [-5.0, -5.0]]
    # the table lists every metric (7), the chart the gated ones (report.gated_metrics: 4 by default)
    assert page.count('<tr class="v-regressed">') == 7 and len(intervals) == 4


def test_html_needs_a_run_or_a_comparison(sollama, tmp_path):
    for args in ([], ["--usage"]):
        result = sollama("report", *args, "--html", str(tmp_path / "x.html"))
        assert result.exit_code == 2, result.output
        assert "--html needs a run to show or --compare" in result.stderr
    assert not (tmp_path / "x.html").exists()


def test_unwritable_target_is_one_line_exit_1(sollama, tmp_path):
    with Store() as store:
        run = add_run(store, n=10)
    result = sollama("report", str(run), "--html", str(tmp_path / "missing" / "x.html"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: cannot write {tmp_path / 'missing' / 'x.html'}: "
                                                  "No such file or directory"]


def test_bench_html_checks_the_target_before_running(sollama, stub, tmp_path):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "2", "--html",
                     str(tmp_path / "nope" / "b.html"))
    assert result.exit_code == 1
    assert "cannot write" in result.stderr and "no folder" in result.stderr
    assert not [r for r in stub.requests if r[1].startswith("/api/generate")]


def test_bench_sweep_html_is_the_stored_sweep(sollama, stub, tmp_path):
    # scripted delays: the per-request time grows with the load, so the sweep stops and finds a knee
    stub.configure(tokens=4, first_token_delay=0.02, token_delay=0.005)
    path = tmp_path / "sweep.html"
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "6", "--warmup", "0", "--sweep",
                     "--sweep-max", "4", "--slo", "e2el=5s", "--json", "--html", str(path))
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    page = path.read_text(encoding="utf-8")
    steps = data["sweep"]["steps"]
    sweep = {s["id"]: s for s in chart_specs(page)}["sweep"]
    assert len(sweep["series"][0]["x"]) == len(steps)
    assert [s["label"] for s in sweep["series"] if s["role"] == "slo"] == ["SLO E2EL 5000 ms"]
    knee = data["sweep"]["knee"]
    assert f"(run {knee['run_id']})" in next(s["label"] for s in sweep["series"] if s["role"] == "knee")
    assert f"sollama bench run {data['run_id']}" in page


# -- chart data shaping (pure) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("values, bins, counts", [
    ([1.0, 2.0, 3.0, 4.0], 3, [1, 1, 2]),          # the largest value falls in the last bin
    ([5.0, 5.0, 5.0], None, [3]),                  # one value: one bin
    ([], None, []),
    ([0.0, float("nan"), 10.0], 2, [1, 1]),        # NaN left out
])
def test_histogram_counts(values, bins, counts):
    assert chart_data.histogram(values, bins).counts == counts


def test_histogram_centres_and_bin_count():
    hist = chart_data.histogram([float(v) for v in range(100)])
    assert len(hist.counts) == chart_data.bin_count(100) == 10
    assert hist.centers[0] == pytest.approx(4.95) and sum(hist.counts) == 100
    assert chart_data.bin_count(10**6) == chart_data.MAX_BINS and chart_data.bin_count(3) == 5


def test_thin_keeps_every_row_under_the_cap_and_spreads_over_it():
    xs = [float(i) for i in range(10_000)]
    assert chart_data.thin([xs[:50], xs[:50]], 100) == [xs[:50], xs[:50]]
    a, b = chart_data.thin([xs, [2 * x for x in xs]], 1000)
    assert 500 <= len(a) <= 1000 and b == [2 * x for x in a]
    assert a[0] == 0.0 and a[-1] > 9000  # spread over the whole run, not its start


def test_bucket_means_and_stacking():
    centers, means, counts = chart_data.bucket_means([0.0, 1.0, 9.0, 10.0], [[1.0, 3.0, 5.0, 7.0]], 2)
    assert centers == [2.5, 7.5] and means == [[2.0, 6.0]] and counts == [2, 2]
    centers, means, counts = chart_data.bucket_means([0.0, 10.0], [[1.0, 3.0]], 5)
    assert centers == [1.0, 9.0] and counts == [1, 1]  # empty buckets left out
    assert chart_data.stacked([[1.0, 2.0], [3.0, 4.0], [0.5, 0.5]]) == [[1.0, 2.0], [4.0, 6.0], [4.5, 6.5]]


def test_bench_html_against_the_real_daemon(sollama, ollama, tmp_path):
    path = tmp_path / "bench.html"
    result = sollama("--host", ollama.host, "bench", "-m", ollama.model, "-n", "3", "--warmup", "0",
                     "--max-tokens", "4", "--label", "html", "--json", "--html", str(path))
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    page = path.read_text(encoding="utf-8")
    assert f"sollama bench run {data['run_id']} (html)" in page and "0.23" in page
    specs = {s["id"]: s for s in chart_specs(page)}
    assert sum(specs["ttft"]["series"][0]["y"]) == data["summary"]["requests_ok"] == 3
    assert [drawable(s) for s in specs["over-time"]["series"]] == [3, 3]
    # the breakdown uses the server's own timings: every part of the stack is there
    assert len(specs["breakdown"]["series"]) == 5
