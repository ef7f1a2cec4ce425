"""The HTML report in a real browser: Debian's Chromium, driven by Playwright, opens each page from disk with
every non-file request blocked, and checks that every chart drew what its data holds, that nothing was fetched,
that no console error occurred, and saves a screenshot (under pytest's tmp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.html_helpers import chart_specs, drawable, write_pages

CHROMIUM = os.environ.get("SOLLAMA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser test is required under CI: {reason} (.ci/run installs chromium)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (the dev extra has it)")
    if not Path(CHROMIUM).is_file():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, path: Path, *, javascript: bool = True) -> tuple[object, object, dict[str, list[str]]]:
    """The page loaded with every request but the file itself blocked; what happened on the way."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, java_script_enabled=javascript,
                                  offline=True)
    seen: dict[str, list[str]] = {"requests": [], "blocked": [], "failed": [], "errors": []}

    def route(r) -> None:
        url = r.request.url
        seen["requests"].append(url)
        if url.startswith("file://"):
            r.continue_()
        else:
            seen["blocked"].append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type in ("error", "warning") and seen["errors"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["errors"].append(f"page error: {e}"))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return context, page, seen


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    from tests.conftest import Sollama

    home = tmp_path_factory.mktemp("html-home")
    old = os.environ.get("SOLLAMA_HOME")
    os.environ["SOLLAMA_HOME"] = str(home)
    try:
        return write_pages(Sollama(), tmp_path_factory.mktemp("pages"))
    finally:
        if old is None:
            os.environ.pop("SOLLAMA_HOME", None)
        else:
            os.environ["SOLLAMA_HOME"] = old


@pytest.mark.parametrize("name", ["run", "sweep", "compare"])
def test_every_chart_draws_its_data_offline(browser, pages, name, tmp_path):
    path = pages[name]
    specs = chart_specs(path.read_text(encoding="utf-8"))
    assert specs, "a page without charts proves nothing"
    context, page, seen = _open(browser, path)
    try:
        page.wait_for_function(f"window.sollamaCharts && Object.keys(window.sollamaCharts).length === {len(specs)}"
                               " && Object.values(window.sollamaCharts).every(c => c.draws > 0)", timeout=15_000)
        drawn = page.evaluate("window.sollamaCharts")
        for spec in specs:
            record = drawn[spec["id"]]
            assert record["width"] > 100 and record["height"] > 100, spec["id"]
            for series in spec["series"]:
                expected = drawable(series)
                assert expected > 0, (spec["id"], series["label"])
                if series["style"] == "bars":  # uPlot's `each` callback, once per bar it drew
                    assert record["bars"][series["label"]] == expected, (spec["id"], series["label"])
                assert record["points"][series["label"]] == expected, (spec["id"], series["label"])
            # the canvas holds ink: more than a few non-white pixels inside the plot area
            inked = page.evaluate("""id => {
                const c = document.querySelector(`[data-chart="${id}"] canvas`);
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200)) n++;
                return n; }""", spec["id"])
            assert inked > 500, (spec["id"], inked)
        # hovering moves uPlot's cursor and fills the legend with values (interactive with JavaScript)
        first = page.locator(f'[data-chart="{specs[0]["id"]}"] .u-over')
        first.scroll_into_view_if_needed()
        box = first.bounding_box()
        page.mouse.move(box["x"] + 5, box["y"] + 5)
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
        legend = f'[data-chart="{specs[0]["id"]}"] .u-legend'
        if not specs[0]["facets"]:
            page.wait_for_function(f"/[0-9]/.test(document.querySelector('{legend}').innerText)", timeout=5_000)
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        context.close()
    assert seen["requests"] == [path.as_uri()], seen["requests"]  # the file itself, nothing else
    assert seen["blocked"] == [] and seen["failed"] == []
    assert seen["errors"] == []


def test_tables_read_without_javascript(browser, pages):
    context, page, seen = _open(browser, pages["run"], javascript=False)
    try:
        text = page.inner_text("body")
        assert "smollm2:135m" in text and "p99" in text and "prompt eval" in text
        assert page.locator(".nojs").is_visible()  # says the charts need JavaScript
        assert page.locator("canvas").count() == 0
    finally:
        context.close()
    assert seen["errors"] == [] and seen["blocked"] == []
