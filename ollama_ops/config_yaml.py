"""YAML config text → a mapping plus where each section and key is written (pure parsing, no schema).

PyYAML's `safe_load` forgets positions; composing the node tree first keeps them, so a type or range error found
later (config.validate_mapping) can name its line and column like a syntax error does. Syntax errors keep
PyYAML's context: where the broken construct starts (an unclosed quote's line) comes first, then where the parser
noticed.
"""

from __future__ import annotations

from typing import Any

import yaml

from ollama_ops.errors import ConfigError

Marks = dict[str, tuple[int, int]]  # "section" / "section.key" (the key) and "…=" (its value) → (line, column)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _syntax_error(exc: yaml.MarkedYAMLError, origin: str) -> ConfigError:
    """PyYAML's problem and its context: where the construct that went wrong starts (an unclosed quote's line)
    comes first, then where the parser noticed."""
    start, end = exc.context_mark, exc.problem_mark
    at = (lambda m: f"{origin}:{m.line + 1}:{m.column + 1}")  # noqa: E731
    problem = exc.problem or "invalid YAML"
    if start is not None and exc.context and (end is None or (start.line, start.column) != (end.line, end.column)):
        tail = f" at {at(end)}" if end is not None else ""
        return ConfigError(f"invalid YAML at {at(start)}: {exc.context}: {problem}{tail}")
    mark = end or start
    return ConfigError(f"invalid YAML at {at(mark) if mark else origin}: {problem}")


def _walk_marks(node: yaml.Node) -> tuple[Marks, list[tuple[tuple[int, int], str]]]:
    """Where each section and key (and its value) is written, and the keys written twice, from the node tree."""
    marks: Marks = {"": _mark(node)}
    duplicates: list[tuple[tuple[int, int], str]] = []

    def scan(mapping: yaml.MappingNode, prefix: str) -> None:
        seen: dict[str, int] = {}
        for key_node, value_node in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            dotted = f"{prefix}{key_node.value}"
            if dotted in seen:  # YAML keeps the last one: say so, and point at it from now on
                duplicates.append((_mark(key_node), f"{dotted} is given twice (first at line {seen[dotted]})"))
            seen.setdefault(dotted, key_node.start_mark.line + 1)
            marks[dotted], marks[dotted + "="] = _mark(key_node), _mark(value_node)
            if not prefix and isinstance(value_node, yaml.MappingNode):
                scan(value_node, dotted + ".")

    if isinstance(node, yaml.MappingNode):
        scan(node, "")
    return marks, duplicates


def parse_yaml_marked(text: str, origin: str) -> tuple[dict[str, Any], Marks, list[str]]:
    """Parse a YAML document into a mapping, the line/column of each section and key, and the keys given twice
    (as messages); raise ConfigError with file, line and column for a syntax error."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        marks, duplicates = _walk_marks(node) if node is not None else ({}, [])
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, origin) from exc
    except yaml.reader.ReaderError as exc:  # a control character: say where, as for every other problem
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(f"invalid YAML at {origin}:{line}:{column}: character U+{exc.character:04X} is not "
                          "allowed in YAML") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {origin}: {' '.join(str(exc).split())}") from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # odd scalars, deep nesting
        raise ConfigError(f"invalid YAML in {origin}: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, (dict, type(None))):
        raise ConfigError(f"{origin}:1:1: the top level must be a mapping of sections, got {type(data).__name__}")
    return data or {}, marks, [f"{origin}:{line}:{col}: {what}" for (line, col), what in duplicates]
