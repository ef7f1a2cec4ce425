"""A what-if does not change what `start` applies: `sollama memory` saves only with --save, and never a plan
that does not fit (against the stub here; the real daemon in test_ops_real.py)."""

from __future__ import annotations

import json

import pytest

from ollama_ops.services import memory as memory_service

WHAT_IFS = [["--parallel", "100000", "--num-ctx", "131072"], ["--num-ctx", "2048"], []]


@pytest.mark.parametrize("args", WHAT_IFS)
def test_memory_without_save_changes_no_plan(sollama, stub, args):
    result = sollama("--host", stub.host, "memory", *args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["saved_to"] is None
    assert not memory_service.plan_path().exists()
    human = sollama("--host", stub.host, "memory", *args)
    assert human.exit_code == 0 and "not saved" in human.stdout and "--save" in human.stdout
    assert not memory_service.plan_path().exists()


@pytest.mark.parametrize("huge", [["--parallel", "100000", "--num-ctx", "131072"], ["--parallel", "50000"],
                                  ["--parallel", "4096", "--num-ctx", "65536", "--kv-cache-type", "f16"]])
def test_save_refuses_a_plan_that_does_not_fit_and_keeps_the_old_one(sollama, stub, huge):
    good = sollama("--host", stub.host, "memory", "--num-ctx", "2048", "--save", "--json")
    assert good.exit_code == 0, good.output
    saved = memory_service.plan_path().read_text()
    assert json.loads(saved)["num_ctx"] == 2048 and json.loads(good.stdout)["saved_to"] == str(
        memory_service.plan_path())

    bad = sollama("--host", stub.host, "memory", *huge, "--save", "--json")
    assert bad.exit_code == 1, bad.output
    assert "not saving a plan that does not fit" in bad.stderr and "stub-model" in bad.stderr
    plan = json.loads(bad.stdout)
    assert plan["saved_to"] is None and not all(m["fits_alone"] for m in plan["models"])
    assert memory_service.plan_path().read_text() == saved  # start still applies the plan that fits
    assert memory_service.load_saved_env()["OLLAMA_CONTEXT_LENGTH"] == "2048"


def test_start_dry_run_applies_the_saved_plan_not_the_what_if(sollama, stub, tmp_path):
    from tests.lifecycle_helpers import fake_binary, free_host

    assert sollama("--host", stub.host, "memory", "--num-ctx", "2048", "--save").exit_code == 0
    assert sollama("--host", stub.host, "memory", "--num-ctx", "8192", "--parallel", "2").exit_code == 0
    binary = fake_binary(tmp_path / "bin", "exit 1")
    result = sollama("--host", free_host(), "start", "--dry-run", "--binary", str(binary), "--json")
    assert result.exit_code == 0, result.output
    env = json.loads(result.stdout)["env"]
    assert env["OLLAMA_CONTEXT_LENGTH"] == "2048" and env["OLLAMA_NUM_PARALLEL"] == "1"
