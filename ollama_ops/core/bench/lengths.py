"""Asked versus returned token counts (pure): did each answer have the output length asked for, and did each prompt
have the length it was made for, by the server's own count.

`LengthCheck` takes every successful measured request's (asked output, server output, requested prompt, server
prompt) and gives a `LengthReport`: the requested and achieved distributions side by side, and how many answers
overran their `max_tokens` (the server ignored it) or stopped before it (end of sequence, or a server that
ignored the limit field).
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_ops.core.bench.quantiles import QuantileSketch
from ollama_ops.core.stats import Distribution


@dataclass
class LengthReport:
    """Requested vs achieved lengths (server tokens) of the measured phase's successful requests."""

    output_checked: int = 0  # answers with a known max_tokens and a server count
    output_overran: int = 0
    output_early: int = 0
    output_requested: Distribution | None = None
    output_achieved: Distribution | None = None
    prompt_requested: Distribution | None = None  # synthetic prompts only
    prompt_achieved: Distribution | None = None
    prompt_off_max: int | None = None  # the largest |achieved − requested| prompt length


class LengthCheck:
    """Accumulates asked/returned lengths in bounded memory (quantile sketches)."""

    def __init__(self) -> None:
        self.report = LengthReport()
        self._out = (QuantileSketch(), QuantileSketch())
        self._prompt = (QuantileSketch(), QuantileSketch())
        self._off = -1

    def add(self, asked_output: int | None, output: int | None, requested_prompt: int | None,
            prompt: int | None) -> None:
        """One successful request; None where a figure is not known (no limit asked, no server count)."""
        r = self.report
        if asked_output is not None and output is not None:
            r.output_checked += 1
            r.output_overran += output > asked_output
            r.output_early += output < asked_output
            self._out[0].add(asked_output)
            self._out[1].add(output)
        if requested_prompt is not None and prompt is not None:
            self._prompt[0].add(requested_prompt)
            self._prompt[1].add(prompt)
            self._off = max(self._off, abs(prompt - requested_prompt))

    def result(self) -> LengthReport:
        r = self.report
        r.output_requested, r.output_achieved = (s.describe() for s in self._out)
        r.prompt_requested, r.prompt_achieved = (s.describe() for s in self._prompt)
        r.prompt_off_max = self._off if self._off >= 0 else None
        return r


def length_warnings(r: LengthReport, api: str) -> list[str]:
    """What a user must hear about the lengths: answers longer than asked, answers shorter than asked."""
    out = []
    if r.output_overran:
        out.append(f"{r.output_overran} of {r.output_checked} answers overran their max_tokens: the server did not "
                   f"honour the limit sent with --api {api}")
    if r.output_early:
        out.append(f"{r.output_early} of {r.output_checked} answers stopped before their max_tokens (end of "
                   "sequence): output lengths are below what was asked")
    return out
