"""Bench prompts (pure): the built-in sets, `--prompts FILE` parsing, and the fixed request plan.

Payloads are fixed before a run starts: each distinct prompt is serialized once, and which prompt request i sends
comes from a generator seeded by `--seed`, so two runs with the same seed send the same requests in the same order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

BUILTIN_SETS = ("short", "medium", "long")

_SHORT = [
    "What is the capital of France?", "Name three primary colors.", "What is 17 times 3?",
    "Translate 'good morning' into Spanish.", "Give a synonym for 'happy'.", "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?", "Name a mammal that can fly.",
    "What does CPU stand for?", "How many days are in a leap year?", "What is the opposite of 'ancient'?",
    "Name the largest planet in the solar system.", "What gas do plants absorb from the air?",
    "Spell 'necessary' backwards.", "What is the square root of 144?", "Name a prime number between 20 and 30.",
    "What language is spoken in Brazil?", "What is H2O commonly called?", "Give one word that rhymes with 'cat'.",
    "How many continents are there?", "What is the freezing point of water in Fahrenheit?",
    "Name a famous painting by Leonardo da Vinci.", "What is the plural of 'mouse'?",
    "What color do you get by mixing blue and yellow?", "What is the chemical symbol for gold?",
    "How many legs does a spider have?", "What is the longest river in Africa?",
    "Write the number twelve in Roman numerals.", "What is the main ingredient of guacamole?",
    "Name an instrument with strings.", "What is the capital of Japan?", "Say hello in French.",
]

_MEDIUM = [
    "Explain in a short paragraph why the sky looks blue during the day and red at sunset.",
    "Write a four-line poem about a lighthouse keeper who waits for a ship that never comes.",
    "Describe how a bicycle converts a rider's pedalling into forward motion.",
    "Summarize the water cycle for a ten-year-old, using simple words.",
    "List five tips for writing clear emails at work, with one sentence on each.",
    "Explain the difference between weather and climate with an example of each.",
    "Write a short product description for a reusable water bottle made of steel.",
    "Describe the steps to make a cup of tea, from boiling the water to serving it.",
    "Explain what a hash table is and why lookups in it are usually fast.",
    "Give three reasons people keep houseplants and one drawback of keeping them.",
    "Write a friendly message inviting a neighbour to a small garden party on Saturday.",
    "Explain how vaccines help the immune system recognise a disease.",
    "Describe a busy train station at eight in the morning in a few vivid sentences.",
    "Compare reading a paper book with reading on a screen, giving two points for each.",
    "Explain why the moon shows phases as it orbits the Earth.",
    "Write the opening paragraph of a mystery story set in a snowed-in mountain hotel.",
    "Explain what compound interest is, with a small numeric example.",
    "Describe how to plant a tomato seedling so that it grows well.",
    "Give a short explanation of what an operating system does for the programs on a computer.",
    "Write a polite note asking a colleague to review a document by Friday.",
    "Explain the rules of tic-tac-toe and a simple strategy to never lose.",
    "Describe what happens in the body during a short sprint.",
    "Explain why bread rises when it is baked.",
    "Write a short dialogue between a customer and a baker about a birthday cake.",
    "Explain the purpose of a version control system for a team of programmers.",
    "Describe three habits that help people sleep better.",
    "Explain why leaves change colour in autumn.",
    "Summarize the plot of a heist story in which nothing goes according to plan.",
    "Explain what latency and throughput mean for a web service, with an analogy.",
    "Describe a quiet beach at dawn, using the senses of sight, sound and smell.",
]

_PASSAGES = [
    "The town of Harlow Bridge grew up around a stone crossing over the river Wend. For centuries the bridge was "
    "the only way across for thirty miles, and every cart of wool, grain and timber paid a small toll to the "
    "keepers who lived in the two squat towers at either end. The tolls paid for repairs, and the repairs were "
    "constant: spring floods loosened the footings, ice cracked the parapets, and once a runaway bull knocked a "
    "section of wall into the water. In the eighteenth century a canal was dug two miles to the east, and traffic "
    "slowly moved away. The towers were sold as houses, the toll was abolished, and the market square, once "
    "crowded every Thursday, became a car park. Today the bridge carries a quiet lane, and the town council argues "
    "each year about whether to spend money on restoring it or on widening the road that bypasses it.",
    "A small software team maintained a service that answered requests for shipping quotes. Most requests took "
    "forty milliseconds, but every few minutes a handful took several seconds. The team first suspected the "
    "database and added an index, which changed nothing. They then logged every request and noticed that the slow "
    "ones always arrived just after a new deployment of a neighbouring service, which warmed its caches by sending "
    "a burst of thousands of requests. The shared connection pool filled, and ordinary requests waited in a queue "
    "for a free connection. The fix was to give each client its own pool with a limit, and to spread the cache "
    "warming over a minute. Afterwards the slowest requests took two hundred milliseconds, and the team added an "
    "alert on queue time so that the next surprise would be visible at once.",
    "Honeybees decide where to build a new nest through a process that looks remarkably like a debate. When a "
    "colony swarms, a few hundred scouts fly out to inspect hollow trees and crevices. A scout that finds a good "
    "site returns and performs a waggle dance whose length reflects how much she likes it. Other scouts visit the "
    "advertised sites and, if impressed, dance for them in turn. Support for weaker sites fades because their "
    "scouts dance less and less with each return. When enough scouts gather at one site, they sense the crowd and "
    "begin to warm up their flight muscles, signalling to the swarm that a decision has been reached. Studies have "
    "found that swarms usually choose the best available site, even though no single bee compares all the options.",
    "The recipe calls for a slow fermentation. Mix five hundred grams of flour with three hundred and fifty grams "
    "of water and leave the dough to rest for half an hour so that the flour absorbs the water. Then add ten grams "
    "of salt and a spoonful of active starter, and fold the dough every thirty minutes for two hours. Cover it and "
    "leave it in a cool room overnight; the long, cool rise develops flavour and makes the crumb open and glossy. "
    "In the morning shape the dough into a tight ball, place it in a floured basket, and let it rise until it "
    "springs back slowly when pressed. Bake in a preheated covered pot at a high temperature for twenty minutes, "
    "then uncover and bake until the crust is deep brown. Let the loaf cool fully before cutting it.",
    "The expedition left the coast in early March with eleven members, four sledges and enough food for ninety "
    "days. The first weeks went well: the ice was smooth and they covered twenty miles a day. In April a storm "
    "pinned them in their tents for six days, and when it cleared they found a wide lead of open water blocking "
    "the route north. They spent a week searching for a crossing, burning food and fuel. The leader decided to "
    "send three members back with one sledge, so that the remaining eight could stretch the supplies. The "
    "returning party reached the coast safely, but the main group was never able to find a way across the water "
    "and turned back in May, arriving exhausted but alive. Their notes on ice drift later proved valuable.",
    "A city library introduced a program lending tools instead of books: drills, ladders, sewing machines and "
    "garden equipment. Members could borrow up to three tools for a week. In the first year the program lent "
    "over four thousand items, and the most popular were a pressure washer and a carpet cleaner. Staff worried "
    "about damage, but fewer than two percent of loans came back broken, usually from ordinary wear. The library "
    "found that many borrowers had never visited before, and a third of them later borrowed books as well. The "
    "main difficulty was storage: tools take much more space than books, and the program needed a separate room "
    "with shelves and hooks. The council has since funded two more branches to start similar collections.",
]

_TASKS = [
    "Summarize the passage above in three sentences.",
    "List the main events of the passage above in order.",
    "What is the most important lesson of the passage above? Explain briefly.",
    "Write five questions a teacher could ask to check that a student understood the passage above.",
]

_LONG = [f"{passage}\n\n{task}" for passage in _PASSAGES for task in _TASKS]


@dataclass(frozen=True)
class PromptItem:
    """One prompt: a plain prompt (generate, or one user message for chat) or a full chat message list.
    A synthetic prompt also carries its own output length (`max_tokens`, over the run's) and the prompt length it
    was made for (`prompt_tokens`, the server's count), to check the answers against."""

    prompt: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    max_tokens: int | None = None
    prompt_tokens: int | None = None


def builtin_prompts(name: str) -> list[PromptItem]:
    """The built-in set `short`, `medium` or `long`. Raises ValueError for another name."""
    sets = {"short": _SHORT, "medium": _MEDIUM, "long": _LONG}
    if name not in sets:
        raise ValueError(f"unknown prompt set {name!r}; built-in sets: {', '.join(BUILTIN_SETS)}")
    return [PromptItem(prompt=p) for p in sets[name]]


def parse_prompt_file(text: str, name: str = "prompts") -> list[PromptItem]:
    """Text lines (one prompt a line, blank lines skipped) or JSONL objects with "prompt" or "messages".

    JSONL is recognised by a `.jsonl` name or a first non-blank line starting with "{". Raises ValueError naming
    the line at fault.
    """
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    jsonl = name.endswith(".jsonl") or first.startswith("{")
    items: list[PromptItem] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            items.append(PromptItem(prompt=line.rstrip("\r")))
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ValueError(f"{name}:{number}: not a JSON object") from None
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str) and obj["prompt"]:
            items.append(PromptItem(prompt=obj["prompt"]))
        elif (isinstance(obj, dict) and isinstance(obj.get("messages"), list) and obj["messages"]
              and all(isinstance(m, dict) and "role" in m for m in obj["messages"])):
            items.append(PromptItem(messages=tuple(obj["messages"])))
        else:
            raise ValueError(f"{name}:{number}: needs a non-empty \"prompt\" string or a \"messages\" list "
                             f"of {{\"role\", \"content\"}} objects")
    if not items:
        raise ValueError(f"{name}: no prompts")
    return items


def request_body(item: PromptItem, *, model: str, api: str, max_tokens: int | None,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of one streamed request of `api` (`apis.API_PATHS`). Raises ValueError when a chat message
    list is used with a completion API, or an option cannot be sent."""
    from ollama_ops.core.bench.apis import is_openai, openai_body

    if is_openai(api):
        return openai_body(model=model, api=api, prompt=item.prompt,
                           messages=list(item.messages) if item.messages else None, max_tokens=max_tokens,
                           options=options)
    opts = dict(options or {})
    if max_tokens is not None:
        opts["num_predict"] = max_tokens
    body: dict[str, Any] = {"model": model, "stream": True}
    if api == "chat":
        body["messages"] = list(item.messages) if item.messages else [{"role": "user", "content": item.prompt}]
    elif item.messages:
        raise ValueError("the prompts hold chat message lists; use --api chat")
    else:
        body["prompt"] = item.prompt
    if opts:
        body["options"] = opts
    return body


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """A well-mixed 64-bit hash of x (SplitMix64's finaliser): the i-th draw of a seeded stream, no state."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class PayloadPlan:
    """Which pre-serialized body request i sends: a seeded choice computed from (seed, i), so the plan is
    reproducible and holds no per-request state however long the run."""

    def __init__(self, bodies: list[bytes], seed: int | None = 0,
                 targets: list[tuple[int | None, int | None]] | None = None) -> None:
        if not bodies:
            raise ValueError("no request bodies")
        self.bodies = bodies
        # per body: (output tokens asked, prompt tokens requested), None where not fixed
        self.targets = targets or [(None, None)] * len(bodies)
        self.sequential = False  # request i sends body i mod n (synthetic prompts: each one distinct)
        self.offsets: list[float] | None = None  # a trace: request k of the measured phase goes at offsets[k]
        self.conversations: list[list[int]] | None = None  # a dataset: each conversation's bodies, turn by turn
        self._seed = random.SystemRandom().getrandbits(64) if seed is None else seed & _MASK64

    def pick(self, i: int) -> int:
        """Which body request `i` (0-based, warm-up requests included) sends."""
        if self.sequential:
            return i % len(self.bodies)
        # SplitMix64's i-th output: mix(seed + i·γ) (γ is added once more inside _splitmix64)
        return _splitmix64((self._seed + i * 0x9E3779B97F4A7C15) & _MASK64) % len(self.bodies)

    def body(self, i: int) -> bytes:
        """The body of request `i` (0-based, warm-up requests included)."""
        return self.bodies[self.pick(i)]


def plan_payloads(items: list[PromptItem], *, model: str, api: str, max_tokens: int | None,
                  options: dict[str, Any] | None = None, seed: int | None = 0) -> PayloadPlan:
    """Serialize every prompt once and fix the seeded order in which requests use them."""
    bodies, targets = [], []
    for item in items:
        asked = item.max_tokens or max_tokens
        if asked is None and options and isinstance(options.get("num_predict"), int):
            asked = options["num_predict"]
        bodies.append(json.dumps(request_body(item, model=model, api=api, max_tokens=asked, options=options),
                                 ensure_ascii=False, separators=(",", ":")).encode())
        targets.append((asked, item.prompt_tokens))
    return PayloadPlan(bodies, seed, targets)
