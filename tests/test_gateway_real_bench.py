"""The pure helpers of benchmarks/gateway_real.py (its figures come from a real run, not from tests)."""

from __future__ import annotations

import pytest

from benchmarks.gateway_real import FIGURES, added, render


def test_added_is_median_gateway_minus_median_direct() -> None:
    direct = {"e2el": [0.5, 0.7, 0.6], "server_gap": [0.001, 0.0002, 0.0003], "ttft": [0.1, 0.3],
              "server_total": [0.5, 0.6, 0.7]}
    gateway = {"e2el": [0.9, 0.62, 0.61], "server_gap": [0.0012, 0.0011, 0.0009], "ttft": [0.2, 0.2, 0.25],
               "server_total": [0.6, 0.6, 0.9], "gateway_wait": [0.0, 0.001, 0.0]}
    out = added(direct, gateway)
    assert out["e2el"] == pytest.approx((0.6, 0.62, 0.02))
    assert out["server_gap"] == pytest.approx((0.0003, 0.0011, 0.0008))
    assert out["ttft"] == pytest.approx((0.2, 0.2, 0.0))
    assert out["server_total"] == pytest.approx((0.6, 0.6, 0.0))
    assert out["gateway_wait"] == pytest.approx((0.0, 0.0, 0.0))  # a direct run reports no wait: counted as 0


def test_added_without_values_is_none_and_renders_so() -> None:
    out = added({"e2el": []}, {"e2el": [0.5]})
    assert out["e2el"] is None and out["ttft"] is None
    lines = render(out)
    assert len(lines) == len(FIGURES)
    assert lines[0] == "median E2EL: no values"


def test_render_in_milliseconds_with_sign() -> None:
    lines = render({"e2el": (0.6, 0.6015, 0.0015), "server_gap": (0.0003, 0.0001, -0.0002)})
    assert lines[0] == "median E2EL: direct 600.00 ms, gateway 601.50 ms → added +1.50 ms"
    assert lines[1] == "median (E2EL − total_duration): direct 0.30 ms, gateway 0.10 ms → added -0.20 ms"
