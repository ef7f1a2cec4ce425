"""Listings merged across hosts (pure): each model once, Ollama's newest-first order, the key's cut."""

from __future__ import annotations

import pytest

from ollama_ops.core.gateway.listing import _when, filter_listing, merge_listings


def tag(name: str, modified: str = "2025-01-01T00:00:00Z", **extra) -> dict:
    return {"name": name, "model": name, "modified_at": modified, **extra}


def test_tags_union_dedupes_by_model_name_first_host_wins():
    a = {"models": [tag("a:1", size=1), tag("both:latest", size=1)]}
    b = {"models": [tag("b:1", size=2), tag("Both", size=2)]}  # "Both" is both:latest to Ollama
    merged = merge_listings("/api/tags", [a, b])
    assert [(m["name"], m["size"]) for m in merged["models"]] == [("a:1", 1), ("both:latest", 1), ("b:1", 2)]


def test_tags_newest_first_like_ollama():
    a = {"models": [tag("old:1", "2024-01-01T00:00:00Z")]}
    b = {"models": [tag("new:1", "2025-06-01T10:00:00.123456789+02:00"), tag("mid:1", "2024-06-01T00:00:00Z")]}
    assert [m["name"] for m in merge_listings("/api/tags", [a, b])["models"]] == ["new:1", "mid:1", "old:1"]


def test_ps_keeps_each_model_once_the_copy_that_expires_last():
    a = {"models": [{"name": "m:1", "size": 100, "expires_at": "2026-01-01T00:05:00.000000001Z"}]}
    b = {"models": [{"name": "m:1", "size": 200, "expires_at": "2026-01-01T00:10:00Z"},
                    {"name": "x:1", "size": 300, "expires_at": "2026-01-01T00:01:00Z"}]}
    merged = merge_listings("/api/ps", [a, b])
    assert [(m["name"], m["size"]) for m in merged["models"]] == [("m:1", 200), ("x:1", 300)]
    assert [(m["name"], m["size"]) for m in merge_listings("/api/ps", [b, a])["models"]] == [("m:1", 200),
                                                                                           ("x:1", 300)]


def test_v1_models_union_by_id_newest_first():
    a = {"object": "list", "data": [{"id": "a:1", "object": "model", "created": 10, "owned_by": "library"}]}
    b = {"object": "list", "data": [{"id": "a:1", "created": 99}, {"id": "b:1", "created": 20}]}
    merged = merge_listings("/v1/models", [a, b])
    assert merged["object"] == "list"
    assert [(m["id"], m["created"]) for m in merged["data"]] == [("b:1", 20), ("a:1", 10)]


@pytest.mark.parametrize("docs", [[], [None, "x", 3], [{"models": "no"}], [{"models": [1, {}, {"name": " "}]}]])
def test_malformed_answers_give_an_empty_listing(docs):
    assert merge_listings("/api/tags", docs)["models"] == []


def test_entries_without_a_time_keep_host_order():
    docs = [{"models": [{"name": "z:1"}]}, {"models": [{"name": "a:1", "modified_at": "2030-01-01T00:00:00Z"}]}]
    assert [m["name"] for m in merge_listings("/api/tags", docs)["models"]] == ["z:1", "a:1"]


@pytest.mark.parametrize(("value", "seconds"), [
    ("1970-01-01T00:00:10Z", 10.0), ("1970-01-01T00:00:10.5Z", 10.5),
    ("1970-01-01T01:00:10.123456789+01:00", 10.123456), (42, 42.0), ("never", None), (None, None), (True, None)])
def test_times_are_read_like_go_writes_them(value, seconds):
    got = _when(value)
    assert (got is None and seconds is None) or got == pytest.approx(seconds)


def test_filter_cuts_to_the_key_patterns():
    doc = {"models": [tag("smollm2:latest"), tag("llama3:8b")], "data": [{"id": "llama3:8b"}, {"id": "smollm2"}]}
    out = filter_listing(doc, ["smollm2*"])
    assert [m["name"] for m in out["models"]] == ["smollm2:latest"]
    assert [m["id"] for m in out["data"]] == ["smollm2"]
