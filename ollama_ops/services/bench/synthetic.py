"""Synthetic workloads: build prompts whose length is exact in the server's own token count, by asking the server.

`synthetic_plan` draws the seeded prompt/output lengths (`core.bench.synthetic`), measures how the server counts
synthetic text with one-token probe requests of the run's own API over the run's own transport (Ollama:
`prompt_eval_count`, OpenAI: `usage.prompt_tokens`), and returns the payload plan with each prompt's requested
lengths. Probes are not part of the run: they go before the warm-up and are not stored.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from ollama_ops.client.transport import Failure, Transport
from ollama_ops.core.bench.prompts import PayloadPlan, PromptItem, plan_payloads, request_body
from ollama_ops.core.bench.synthetic import (
    MIN_FIT_WORDS,
    LengthSpec,
    TokenFit,
    correct_words,
    fit_tokens,
    sample_lengths,
    word_text,
)
from ollama_ops.errors import SollamaError, UsageError

POOL_MAX = 256  # distinct synthetic prompts at most (request i sends prompt i mod pool)
CORRECT_MAX = 64  # prompts corrected one by one where the fit is not exact
CORRECT_ROUNDS = 4


@dataclass
class SyntheticInfo:
    """How the synthetic prompts were made: the requested specs and the server's measured token fit."""

    prompt_tokens: str
    output_tokens: str | None
    prefix_tokens: int
    prompts: int  # distinct prompts in the plan
    overhead_tokens: float  # what the server adds to any prompt with this API (template, BOS)
    tokens_per_word: float
    exact: bool  # the fit predicted a check prompt exactly: no per-prompt probes were needed
    probes: int  # one-token calibration requests sent


class _Prober:
    def __init__(self, config: Any, transport: Transport, path: str) -> None:
        self.config, self.transport, self.path = config, transport, path
        self.count = 0

    async def tokens(self, text: str) -> int:
        """The server's prompt token count of `text` (a one-token request of the run's API)."""
        body = request_body(PromptItem(prompt=text), model=self.config.model, api=self.config.api, max_tokens=1,
                            options=self.config.options)
        self.count += 1
        try:
            final = await self.transport.exchange(self.path, json.dumps(body).encode(), [], [0.0, None])
        except Failure as exc:
            raise SollamaError(f"calibrating synthetic prompts failed: {exc}") from None
        count = final.get("prompt_eval_count")
        if count.__class__ is not int or count <= 0:
            raise SollamaError("the server gave no prompt token count (Ollama prompt_eval_count, OpenAI "
                               "usage.prompt_tokens): synthetic prompt lengths cannot be calibrated")
        return int(count)


def _text(prefix: str, seed: int, k: int, words: int) -> str:
    unique = word_text(words, random.Random(f"{seed}:{k}"))
    return f"{prefix} {unique}" if prefix else unique


async def synthetic_plan(config: Any, transport: Transport, path: str,
                         total: int | None) -> tuple[PayloadPlan, SyntheticInfo]:
    """The payload plan of a synthetic run of `total` requests (None: a timed run) and how it was made."""
    prompt_spec: LengthSpec = config.prompt_tokens
    output_spec: LengthSpec | None = config.output_tokens
    seed = config.load.seed or 0
    rng = random.Random(seed)
    pool = min(total or POOL_MAX, POOL_MAX)
    targets = [t + config.prefix_tokens for t in sample_lengths(prompt_spec, pool, rng)]
    outputs: list[int | None] = list(sample_lengths(output_spec, pool, rng)) if output_spec else [None] * pool
    items, info = await calibrated_items(config, transport, path, targets, outputs, cap=True)
    info.prompt_tokens = prompt_spec.describe()
    info.output_tokens = output_spec.describe() if output_spec else None
    plan = _plan(config, items)
    plan.sequential = True
    return plan, info


def _plan(config: Any, items: list[PromptItem]) -> PayloadPlan:
    try:
        return plan_payloads(items, model=config.model, api=config.api, max_tokens=config.max_tokens,
                             options=config.options, seed=config.load.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def calibrated_items(config: Any, transport: Transport, path: str, targets: list[int],
                           outputs: list[int | None], *, cap: bool) -> tuple[list[PromptItem], SyntheticInfo]:
    """Prompts of `targets` server tokens each (prefixed by `config.prefix_tokens` of shared text), answers bounded
    by `outputs`. `cap`: where the fit is not exact, keep only the first CORRECT_MAX prompts (each costs probes)."""
    seed = config.load.seed or 0
    prefix_tokens = getattr(config, "prefix_tokens", 0) or 0
    probe = _Prober(config, transport, path)
    # The fit: two word counts spanning the requested lengths, then a check prompt of a third.
    w1, w2 = MIN_FIT_WORDS, max(2 * MIN_FIT_WORDS, max(targets))
    points = [(w1, await probe.tokens(_text("", seed, -1, w1))), (w2, await probe.tokens(_text("", seed, -2, w2)))]
    fit = fit_tokens(points)
    prefix_words = round(prefix_tokens / fit.per_word)
    prefix = word_text(prefix_words, random.Random(f"{seed}:prefix")) if prefix_words else ""
    floor = fit.tokens(prefix_words + 1)
    if min(targets) < floor:
        raise UsageError(f"prompt lengths: the server counts at least {floor:g} tokens for a prompt"
                         + (f" with a {prefix_tokens}-token prefix" if prefix_tokens else "")
                         + f" with --api {config.api} (its template adds {fit.overhead:g}); ask for more")
    mid = (w1 + w2) // 2 + 1
    exact = fit.exact and await probe.tokens(_text("", seed, -3, mid)) == fit.tokens(mid)
    if not exact and cap:
        targets, outputs = targets[:CORRECT_MAX], outputs[:CORRECT_MAX]
    items = []
    for k, target in enumerate(targets):
        words = max(1, fit.words_for(target) - prefix_words)
        if not exact:
            words = await _correct(probe, fit, prefix, seed, k, words, target)
        items.append(PromptItem(prompt=_text(prefix, seed, k, words), max_tokens=outputs[k], prompt_tokens=target))
    info = SyntheticInfo(prompt_tokens="", output_tokens=None, prefix_tokens=prefix_tokens, prompts=len(items),
                         overhead_tokens=fit.overhead, tokens_per_word=fit.per_word, exact=exact,
                         probes=probe.count)
    return items, info


async def trace_plan(config: Any, transport: Transport, path: str) -> tuple[PayloadPlan, SyntheticInfo | None]:
    """The plan of a trace replay: request k sends entry k's prompt (a synthetic one calibrated to its length)
    at its offset divided by `config.speed`."""
    entries = config.trace
    items: list[PromptItem | None] = [
        None if e.item is None else PromptItem(prompt=e.item.prompt, messages=e.item.messages,
                                               max_tokens=e.output_tokens) for e in entries]
    synthetic = [k for k, e in enumerate(entries) if e.prompt_tokens is not None]
    info = None
    if synthetic:
        made, info = await calibrated_items(config, transport, path,
                                            [entries[k].prompt_tokens or 0 for k in synthetic],
                                            [entries[k].output_tokens for k in synthetic], cap=False)
        info.prompt_tokens = "trace"
        for k, item in zip(synthetic, made, strict=True):
            items[k] = item
    plan = _plan(config, [i for i in items if i is not None])
    plan.sequential = True
    plan.offsets = [e.offset / config.speed for e in entries]
    return plan, info


async def _correct(probe: _Prober, fit: TokenFit, prefix: str, seed: int, k: int, words: int, target: int) -> int:
    """Probe prompt k and step its word count towards `target` (bounded rounds); the closest count seen wins."""
    best, best_off = words, None
    for _ in range(CORRECT_ROUNDS):
        got = await probe.tokens(_text(prefix, seed, k, words))
        if best_off is None or abs(got - target) < best_off:
            best, best_off = words, abs(got - target)
        if got == target:
            break
        words = max(1, correct_words(words, target, got, fit))
    return best
