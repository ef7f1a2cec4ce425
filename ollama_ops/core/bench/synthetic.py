"""Synthetic workloads (pure): prompts of a given length in the SERVER's tokens, output lengths held fixed, a shared
prefix, all seeded and reproducible.

A length is written like serving benchmarks write it: `N[:stddev[:min:max]]` (`--prompt-tokens 512`,
`--output-tokens 128:32:64:256`). Each request's length is drawn from a normal distribution (seeded), rounded and
clipped to [min, max].

Prompt text is a seeded stream of common English words, each one token (with its leading space) in the BPE
vocabularies of the usual open models, so a prompt's token count is `overhead + words × per_word` where
`overhead` is what the server adds (chat template, BOS). Neither is assumed: the service measures the server's own
count (Ollama's `prompt_eval_count`, OpenAI's `usage.prompt_tokens`) of a few probe prompts, `fit_tokens` solves
for overhead and per_word, and a third probe checks the fit; where it is not exact (a tokenizer that splits some
words), each prompt is corrected by its own probes (`correct_words`). No other tokenizer is ever used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Short, frequent words: one token each (with a leading space) in GPT-2, Llama, Mistral, Qwen and SmolLM BPEs.
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an had "
    "they you were their one all we can her has there been if more when will would who so no out up into do "
    "time about than only other new some could these two may first then like now my such make over our even "
    "most after also made many did well where back way just year good very through long own work down day get "
    "use man too any same old see people take much great world life still last here might never under place "
    "house small found part each home high left thought few side end set play light hand word").split()

MIN_FIT_WORDS = 8


@dataclass(frozen=True)
class LengthSpec:
    """A length distribution: mean, standard deviation, and the clip range (inclusive)."""

    mean: int
    stddev: float = 0.0
    low: int = 1
    high: int | None = None

    def describe(self) -> str:
        if self.high is None and self.low <= 1:
            return f"{self.mean}:{self.stddev:g}" if self.stddev else str(self.mean)
        high = "" if self.high is None else str(self.high)
        return f"{self.mean}:{self.stddev:g}:{self.low}:{high}"


MAX_TOKENS_LENGTH = 1 << 20  # a million tokens: beyond any served context


def parse_length(text: str, flag: str, *, low: int = 1) -> LengthSpec:
    """'512' | '512:64' | '512:64:256:1024' → LengthSpec; ValueError with a one-line reason naming `flag`."""
    parts = text.strip().split(":")
    if len(parts) not in (1, 2, 4):
        raise ValueError(f"{flag} must be N, N:STDDEV or N:STDDEV:MIN:MAX, got {text!r}")
    try:
        mean = int(parts[0])
        stddev = float(parts[1]) if len(parts) > 1 else 0.0
        lo = int(parts[2]) if len(parts) == 4 else low
        hi = int(parts[3]) if len(parts) == 4 else None
    except ValueError:
        raise ValueError(f"{flag} must be whole numbers (the standard deviation may be decimal), "
                         f"got {text!r}") from None
    if not low <= mean <= MAX_TOKENS_LENGTH:
        raise ValueError(f"{flag} must be between {low} and {MAX_TOKENS_LENGTH}, got {mean}")
    if not 0 <= stddev <= MAX_TOKENS_LENGTH:  # also refuses nan
        raise ValueError(f"{flag}: the standard deviation must be between 0 and {MAX_TOKENS_LENGTH}, got {parts[1]}")
    if hi is not None and not low <= lo <= mean <= hi <= MAX_TOKENS_LENGTH:
        raise ValueError(f"{flag}: needs {low} ≤ MIN ≤ N ≤ MAX ≤ {MAX_TOKENS_LENGTH}, got {text!r}")
    return LengthSpec(mean, stddev, lo, hi)


def sample_lengths(spec: LengthSpec, n: int, rng: random.Random) -> list[int]:
    """`n` lengths drawn from `spec` (normal, rounded, clipped) with `rng`."""
    out = []
    for _ in range(n):
        value = round(rng.gauss(spec.mean, spec.stddev)) if spec.stddev else spec.mean
        value = max(spec.low, value)
        if spec.high is not None:
            value = min(spec.high, value)
        out.append(value)
    return out


def word_text(n_words: int, rng: random.Random) -> str:
    """`n_words` seeded words joined by spaces (no leading space). The first is always "the": a word at the start
    of a text has no space before it, and may count differently from the same word inside the text."""
    if n_words <= 0:
        return ""
    return " ".join(["the", *(rng.choice(WORDS) for _ in range(n_words - 1))])


@dataclass(frozen=True)
class TokenFit:
    """How the server counts a prompt of w synthetic words: overhead + w × per_word tokens."""

    overhead: float
    per_word: float

    def tokens(self, words: int) -> float:
        return self.overhead + words * self.per_word

    def words_for(self, tokens: float) -> int:
        """The word count whose predicted token count is nearest `tokens` (≥ 0)."""
        return max(0, round((tokens - self.overhead) / self.per_word))

    @property
    def exact(self) -> bool:
        """One token per word and a whole overhead: every prompt's count is known without probing it."""
        return self.per_word == 1.0 and float(self.overhead).is_integer()


def fit_tokens(points: list[tuple[int, int]]) -> TokenFit:
    """Least-squares line through (words, server tokens) probes. ValueError when the probes cannot give one (fewer
    than two word counts, or counts that do not grow with the words)."""
    if len({w for w, _ in points}) < 2:
        raise ValueError("need probes of at least two different word counts")
    n = len(points)
    mw = sum(w for w, _ in points) / n
    mt = sum(t for _, t in points) / n
    var = sum((w - mw) ** 2 for w, _ in points)
    slope = sum((w - mw) * (t - mt) for w, t in points) / var
    if not slope > 0:
        raise ValueError(f"the server's prompt token counts do not grow with the prompt: {points}")
    if abs(slope - round(slope)) < 1e-9:
        slope = float(round(slope))
    intercept = mt - slope * mw
    if abs(intercept - round(intercept)) < 1e-9:
        intercept = float(round(intercept))
    return TokenFit(intercept, slope)


def correct_words(words: int, target: int, got: int, fit: TokenFit) -> int:
    """The next word count to try for a prompt of `words` words that the server counted as `got` tokens when
    `target` was wanted (a secant step along the fitted slope; at least one word changes)."""
    if got == target:
        return words
    step = round((target - got) / fit.per_word)
    if step == 0:
        step = 1 if target > got else -1
    return max(0, words + step)
