"""One typed settings object, resolved flag > SOLLAMA_* env > config file > shipped defaults.

The shipped `config/default.yaml` is the only place defaults are written; the schema (types and allowed ranges)
is `config_schema`, the checks are `config_check`. This module finds, reads and merges the sources in order of
precedence, and re-exports the schema so that `from ollama_ops.config import Settings` keeps working.
Every problem with a config file raises `ConfigError` (exit 3).
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ollama_ops import paths
from ollama_ops.config_check import matches_type, validate_mapping
from ollama_ops.config_schema import (
    ENV_ALIASES,
    HINTS,
    KV_CACHE_TYPES,
    SECTIONS,
    WEEK_S,
    BenchSettings,
    ClientSettings,
    GatewaySettings,
    GenerateSettings,
    LoggingSettings,
    MemorySettings,
    OllamaSettings,
    ReportSettings,
    ServerSettings,
    Settings,
    WatchSettings,
)
from ollama_ops.config_yaml import parse_yaml_marked
from ollama_ops.errors import ConfigError

__all__ = [
    "ENV_ALIASES", "HINTS", "KV_CACHE_TYPES", "SECTIONS", "WEEK_S", "BenchSettings", "ClientSettings",
    "ConfigEntry", "ConfigView", "GatewaySettings", "GenerateSettings", "LoggingSettings", "MemorySettings",
    "OllamaSettings", "ReportSettings", "ServerSettings", "Settings", "WatchSettings", "config_file_path",
    "default_yaml_path", "describe", "env_overrides", "load_file", "load_settings", "parse_yaml",
    "settings_as_dict", "validate_mapping", "write_example",
]


def default_yaml_path() -> Path:
    """The shipped defaults: inside the wheel, or `config/` beside the package in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "default.yaml", here.parent / "config" / "default.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("the built-in defaults (config/default.yaml) are missing from this installation")


def config_file_path(explicit: str | Path | None = None) -> Path:
    """`--config`, else SOLLAMA_CONFIG, else `config.yaml` in the user config dir (or SOLLAMA_HOME)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SOLLAMA_CONFIG")
    if env:
        return Path(env).expanduser()
    return paths.config_dir() / "config.yaml"


def parse_yaml(text: str, origin: str) -> dict[str, Any]:
    """Parse a YAML document into a mapping, or raise ConfigError with file, line and column."""
    data, _, duplicates = parse_yaml_marked(text, origin)
    if duplicates:
        raise ConfigError("; ".join(duplicates))
    return data


def _coerce_env(raw: str, tp: Any) -> Any:
    """Turn an environment string into the field's type (YAML scalar rules, lists comma-separated)."""
    origin = typing.get_origin(tp)
    if origin is list:
        return [p.strip() for p in raw.split(",") if p.strip()]
    if raw.strip().lower() in ("", "null", "none"):
        return None
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):  # e.g. a timestamp "2001-13-45"
        value = raw
    if isinstance(value, (dict, list)) and origin is not dict:
        value = raw
    ok, _ = matches_type(value, tp)
    return value if ok else raw


def env_overrides(environ: typing.Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Read SOLLAMA_<SECTION>_<KEY> (and the aliases) from the environment."""
    data: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for section, hints in HINTS.items():
        for key, tp in hints.items():
            dotted = f"{section}.{key}"
            names = [f"SOLLAMA_{section.upper()}_{key.upper()}"]
            names = [n for n in ENV_ALIASES.get(dotted, []) if n not in names] + names
            for var in names:
                if dotted == "server.host" and var in environ and not environ[var].strip():
                    continue  # an empty OLLAMA_HOST= means unset, as Ollama reads it
                if var in environ:
                    data.setdefault(section, {})[key] = _coerce_env(environ[var], tp)
                    sources[dotted] = f"env:{var}"
    return data, sources


def _merge(base: dict[str, dict[str, Any]], over: dict[str, dict[str, Any]], sources: dict[str, str],
           label: str | dict[str, str]) -> None:
    for section, body in over.items():
        for key, value in body.items():
            base.setdefault(section, {})[key] = value
            dotted = f"{section}.{key}"
            sources[dotted] = label[dotted] if isinstance(label, dict) else label


def load_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read and validate one config file (a regular UTF-8 file of at most 1 MiB: a FIFO, a device or a directory
    is refused before it is opened)."""
    from ollama_ops.edges.textfile import CONFIG_LIMIT, read_text_file

    text = read_text_file(path, what="config file", error=ConfigError, limit=CONFIG_LIMIT)
    return _validate_text(text, str(path))


def _validate_text(text: str, origin: str) -> dict[str, dict[str, Any]]:
    data, marks, duplicates = parse_yaml_marked(text, origin)
    return validate_mapping(data, origin, marks, duplicates)


def _load_defaults(path: Path) -> dict[str, dict[str, Any]]:
    """The shipped defaults, read on every call: with libyaml where PyYAML has it (~0.5 ms instead of ~14 ms for
    the pure-Python reader with marks); the marked reader only to word an error in a broken installation."""
    text = path.read_text(encoding="utf-8")
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            data = yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            try:
                return validate_mapping(data, str(path))
            except ConfigError:
                pass
    return _validate_text(text, str(path))


def load_settings(config: str | Path | None = None, *, environ: typing.Mapping[str, str] | None = None,
                  flags: dict[str, Any] | None = None) -> Settings:
    """Resolve the effective settings. `flags` maps "section.key" to values given on the command line."""
    environ = os.environ if environ is None else environ
    default_path = default_yaml_path()
    merged = _load_defaults(default_path)
    sources = {f"{s}.{k}": "default" for s, body in merged.items() for k in body}

    path = config_file_path(config)
    config_file = None
    if path.exists():
        _merge(merged, load_file(path), sources, f"file:{path}")
        config_file = path
    elif config or environ.get("SOLLAMA_CONFIG"):
        raise ConfigError(f"config file not found: {path}", hint="create one with `sollama config init`")

    env_data, env_sources = env_overrides(environ)
    overridden = {k for k, v in (flags or {}).items() if v is not None}
    for section, body in env_data.items():  # one at a time, so an error names the variable
        for key, value in list(body.items()):
            if f"{section}.{key}" in overridden:  # the flag wins; the variable is not used
                del body[key]
                continue
            origin = f"environment variable {env_sources[f'{section}.{key}'].removeprefix('env:')}"
            validate_mapping({section: {key: value}}, origin)
    _merge(merged, validate_mapping(env_data, "environment"), sources, env_sources)

    if flags:
        flag_data: dict[str, dict[str, Any]] = {}
        for dotted, value in flags.items():
            if value is not None:
                section, key = dotted.split(".", 1)
                flag_data.setdefault(section, {})[key] = value
        _merge(merged, validate_mapping(flag_data, "command line"), sources, "flag")

    missing = [f"{s}.{k}" for s, hints in HINTS.items() for k in hints if k not in merged.get(s, {})]
    if missing:
        raise ConfigError(f"{default_path}: built-in defaults lack {', '.join(missing)}")
    built = {name: SECTIONS[name](**merged[name]) for name in SECTIONS}
    return Settings(**built, sources=sources, config_file=config_file)


def settings_as_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective values, section by section (without the bookkeeping fields)."""
    return {name: {f.name: getattr(getattr(settings, name), f.name) for f in fields(SECTIONS[name])}
            for name in SECTIONS}


@dataclass
class ConfigEntry:
    key: str
    value: Any
    source: str


@dataclass
class ConfigView:
    """What `sollama config show` reports."""

    config_file: str | None
    entries: list[ConfigEntry]


def describe(settings: Settings) -> ConfigView:
    values = settings_as_dict(settings)
    entries = [ConfigEntry(f"{s}.{k}", v, settings.sources.get(f"{s}.{k}", "default"))
               for s, body in values.items() for k, v in body.items()]
    return ConfigView(str(settings.config_file) if settings.config_file else None, entries)


def write_example(target: Path, *, force: bool = False) -> Path:
    """Copy the example config to `target`; refuses to overwrite unless `force`."""
    from ollama_ops.errors import SollamaError

    if target.exists() and not force:
        raise SollamaError(f"{target} already exists", hint="use --force to overwrite it")
    example = default_yaml_path().parent / "sollama.example.yaml"
    text = example.read_text(encoding="utf-8") if example.is_file() else default_yaml_path().read_text("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
