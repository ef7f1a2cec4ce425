"""The one sanitizer for text that reaches a terminal from outside: model output, server messages, model names.

Terminal control comes from a few characters only: the C0 controls (ESC starts every CSI/OSC/DCS sequence, BEL,
BS and CR rewrite what is shown), DEL, the C1 controls (0x9B is an 8-bit CSI, 0x9D an OSC) and the bidi
overrides that reorder a line. `clean_text` drops them (keeping newline and tab), which leaves an escape
sequence as inert visible text ("[2J") and changes no width: a terminal gives these characters no cells, so
tables stay aligned. Every console sollama prints through applies it to each piece of text it renders
(`render.console.SafeConsole`); JSON output escapes C1 and bidi characters as \\uXXXX instead (C0 ones are
escaped by JSON itself); generated text is cleaned only when it goes to a terminal (on a pipe it stays
byte-exact).
"""

from __future__ import annotations

import re

# C0 but tab and newline, DEL, C1, and the bidi embeddings/overrides/isolates. A regex, not str.translate: about 5x
# faster on non-ASCII text, and text without any of them (nearly all) costs one search.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """`text` without terminal controls (newline and tab kept): safe to print on a terminal."""
    return _UNSAFE.sub("", text) if _UNSAFE.search(text) else text


def escape_json_text(document: str) -> str:
    """A JSON document with DEL, C1 and bidi control characters written as \\uXXXX escapes (still the same JSON:
    they can only occur inside strings, and C0 controls are escaped by the JSON encoder already)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
