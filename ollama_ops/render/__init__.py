"""Renderers: turn service dataclasses into Rich tables, JSON, Markdown or charts. They compute nothing."""
