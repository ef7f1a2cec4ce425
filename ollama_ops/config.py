"""One typed settings object, resolved flag > SOLLAMA_* env > config file > shipped defaults.

The shipped `config/default.yaml` is the only place defaults are written; the dataclasses below only give the
types and the allowed ranges. Every problem with a config file raises `ConfigError` (exit 3) naming the file
and the line/column, the unknown key with the nearest valid one, or the field path with the expected type.
"""

from __future__ import annotations

import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from ollama_ops import paths
from ollama_ops.config_yaml import Marks, parse_yaml_marked
from ollama_ops.errors import ConfigError, UsageError

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
WEEK_S = 7 * 86400.0  # the longest timeout, as for the command-line flags (core/options.py)


def _rule(**kw: Any) -> Any:
    return field(metadata=kw)


@dataclass
class ServerSettings:
    host: str = _rule(address=True)
    models_dir: str | None = _rule()
    keep_alive: str | int | None = _rule(duration=True)
    num_parallel: int | None = _rule(min=1)
    max_loaded_models: int | None = _rule(min=0)
    context_length: int | None = _rule(min=0)
    kv_cache_type: str | None = _rule(choices=KV_CACHE_TYPES)
    flash_attention: bool | None = _rule()
    max_queue: int | None = _rule(min=1)
    no_cloud: bool | None = _rule()
    start_timeout: float = _rule(min=0.1, max=WEEK_S)
    extra_env: dict[str, str] = _rule()


@dataclass
class OllamaSettings:
    binary: str | None = _rule()


@dataclass
class MemorySettings:
    reserve: str | int = _rule()
    enforce: bool = _rule()


@dataclass
class ClientSettings:
    connect_timeout: float = _rule(min=0.01, max=WEEK_S)
    read_timeout: float = _rule(min=0.01, max=WEEK_S)
    retries: int = _rule(min=0, max=10)
    busy_retries: int = _rule(min=0, max=10)
    breaker_failures: int = _rule(min=1)
    breaker_cooldown: float = _rule(min=0, max=WEEK_S)


@dataclass
class GenerateSettings:
    timeout: float = _rule(min=0.01, max=WEEK_S)
    keep_alive: str | int | None = _rule(duration=True)


@dataclass
class BenchSettings:
    concurrency: int = _rule(min=1, max=4096)
    requests: int = _rule(min=1)
    warmup: int = _rule(min=0)
    max_tokens: int = _rule(min=1)
    prompts: str = _rule(nonempty=True)
    api: str = _rule(choices=("generate", "chat"))
    timeout: float = _rule(min=0.01, max=WEEK_S)


@dataclass
class ReportSettings:
    threshold: float = _rule(min=0, max=1000)
    gated_metrics: list[str] = _rule()


@dataclass
class LoggingSettings:
    level: str = _rule(choices=("debug", "info", "warning", "error"))
    max_log_bytes: int = _rule(min=1024)


@dataclass
class WatchSettings:
    interval: float = _rule(min=0.01, max=WEEK_S)
    probe_timeout: float = _rule(min=0.01, max=WEEK_S)
    probe_model: str | None = _rule()
    failures: int = _rule(min=1, max=1000)
    backoff: float = _rule(min=0, max=WEEK_S)
    backoff_max: float = _rule(min=0, max=WEEK_S)
    max_restarts: int = _rule(min=1, max=1000)
    on_event: list[str] = _rule()


@dataclass
class GatewaySettings:
    """`sollama serve` (see ollama_ops/gateway/)."""

    listen: str = _rule(nonempty=True)
    upstream: str | None = _rule(address=True)
    slots: int | None = _rule(min=1, max=1024)
    workers: int = _rule(min=1, max=1)
    auth: str = _rule(choices=("auto", "required", "off"))
    metrics_token: str | None = _rule()
    cors_origins: list[str] = _rule()
    body_limit: int = _rule(min=1024, max=2**40)
    queue_depth: int = _rule(min=0, max=10**7)
    max_wait: float = _rule(min=0.01, max=WEEK_S)
    first_byte_timeout: float = _rule(min=0.01, max=WEEK_S)
    idle_timeout: float = _rule(min=0.01, max=WEEK_S)
    drain_timeout: float = _rule(min=0, max=WEEK_S)
    log_prompts: bool = _rule()
    limits_storage: str = _rule(nonempty=True)
    upstreams: list[str] = _rule()
    state: str | None = _rule()
    store: str | None = _rule()
    lease_ttl: float = _rule(min=0.5, max=3600)
    poll_interval: float = _rule(min=0.1, max=3600)


@dataclass
class Settings:
    server: ServerSettings
    ollama: OllamaSettings
    memory: MemorySettings
    client: ClientSettings
    generate: GenerateSettings
    bench: BenchSettings
    report: ReportSettings
    logging: LoggingSettings
    watch: WatchSettings
    gateway: GatewaySettings
    # Where each leaf value came from ("default", "file:<path>", "env:<VAR>", "flag:--x"), keyed "section.key".
    sources: dict[str, str] = field(default_factory=dict, repr=False)
    config_file: Path | None = None


SECTIONS: dict[str, type] = {name: tp for name, tp in typing.get_type_hints(Settings).items()
                             if isinstance(tp, type) and is_dataclass(tp)}
_HINTS = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}

# Environment variables that are not spelled SOLLAMA_<SECTION>_<KEY>, lowest precedence first.
ENV_ALIASES: dict[str, list[str]] = {
    "server.host": ["OLLAMA_HOST", "SOLLAMA_SERVER_HOST"],
    "ollama.binary": ["SOLLAMA_OLLAMA_BIN", "SOLLAMA_OLLAMA_BINARY"],
}


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


def _type_name(tp: Any) -> str:
    if isinstance(tp, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is list:
        return "list of strings"
    if origin is dict:
        return "mapping of strings"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, str(tp))


def _matches(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether `value` has type `tp`; returns the (possibly normalised) value."""
    if isinstance(tp, types.UnionType):
        for arg in typing.get_args(tp):
            ok, norm = _matches(value, arg)
            if ok:
                return True, norm
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    origin = typing.get_origin(tp)
    if origin is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, list(value) if ok else value
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and not isinstance(v, (dict, list))
                                             for k, v in value.items())
        if ok:
            return True, {k: "" if v is None else str(v) for k, v in value.items()}
        return False, value
    return False, value


class _Problem(Exception):
    """One thing wrong with one config value; `validate_mapping` gathers them."""


def _check_value(path: str, value: Any, tp: Any, rules: dict[str, Any], origin: str) -> Any:
    ok, norm = _matches(value, tp)
    if not ok:
        raise _Problem(f"{path} must be {_type_name(tp)}, got {value!r:.60}")
    if norm is None:
        return norm
    if rules.get("address"):
        _check_address(path, norm, origin)
    if "choices" in rules and norm not in rules["choices"]:
        raise _Problem(f"{path} must be one of {', '.join(rules['choices'])}, got {norm!r:.60}")
    if rules.get("nonempty") and isinstance(norm, str) and not norm.strip():
        raise _Problem(f"{path} must not be empty")
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        if norm != norm:  # NaN
            raise _Problem(f"{path} must be a number, got NaN")
        if not math.isfinite(norm):
            raise _Problem(f"{path} must be a finite number, got {norm}")
        if "min" in rules and norm < rules["min"]:
            raise _Problem(f"{path} must be >= {rules['min']}, got {norm}")
        if "max" in rules and norm > rules["max"]:
            raise _Problem(f"{path} must be <= {rules['max']:g}, got {norm:.6g}")
    if path == "memory.reserve":
        from ollama_ops.core.units import parse_reserve

        try:
            parse_reserve(norm)
        except ValueError as exc:
            raise _Problem(f"memory.reserve {exc}") from exc
    if rules.get("duration"):
        from ollama_ops.core.options import KEEP_ALIVE, check_duration

        problem = check_duration(str(norm), KEEP_ALIVE, days=False)
        if problem:
            raise _Problem(f"{path} {problem}")
    return norm


def _check_address(path: str, value: str, origin: str) -> None:
    """A server address must parse strictly (core.hosts.check_host): a typo must never fall back to the default
    daemon. From the command line or the environment that is a usage error (exit 2), in a file a config error."""
    from ollama_ops.core.hosts import HostError, check_host

    try:
        check_host(value)
    except HostError as exc:
        if origin == "command line":
            raise UsageError(f"invalid --host {value!r:.80}: {exc}") from None
        if origin.startswith("environment variable "):
            raise UsageError(f"invalid {origin.removeprefix('environment variable ')}={value!r:.80}: {exc}") \
                from None
        if not value.strip():
            raise _Problem(f"{path} must not be empty") from None
        raise _Problem(f"{path} {value!r:.80} is not a valid address: {exc}") from None


def _nearest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(options)}"


def validate_mapping(data: dict[str, Any], origin: str, marks: Marks | None = None,
                     problems: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Check a (partial) config mapping against the schema; returns it normalised. Every problem in it is
    reported at once (one ConfigError, problems joined by "; "), each at its line and column when `marks` has
    them."""
    marks = marks or {}
    problems = list(problems or [])

    def report(where: str, message: str) -> None:
        mark = marks.get(where)
        problems.append(f"{origin}:{mark[0]}:{mark[1]}: {message}" if mark else f"{origin}: {message}")

    def in_file_order(problem: str) -> tuple[int, int]:
        parts = problem.removeprefix(f"{origin}:").split(":", 2)
        return (int(parts[0]), int(parts[1])) if parts[0].isdigit() and parts[1].isdigit() else (0, 0)

    out: dict[str, dict[str, Any]] = {}
    for section, body in data.items():
        if not isinstance(section, str) or section not in SECTIONS:
            report(str(section), f"unknown section '{section}'{_nearest(str(section), list(SECTIONS))}")
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            report(f"{section}=", f"section '{section}' must be a mapping, got {type(body).__name__}")
            continue
        hints = _HINTS[section]
        rules = {f.name: dict(f.metadata) for f in fields(SECTIONS[section])}
        out[section] = {}
        for key, value in body.items():
            if not isinstance(key, str) or key not in hints:
                report(f"{section}.{key}", f"unknown key '{section}.{key}'{_nearest(str(key), list(hints))}")
                continue
            try:
                out[section][key] = _check_value(f"{section}.{key}", value, hints[key], rules[key], origin)
            except _Problem as exc:
                report(f"{section}.{key}=", str(exc))
    if problems:
        raise ConfigError("; ".join(sorted(problems, key=in_file_order)))
    return out


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
    ok, _ = _matches(value, tp)
    return value if ok else raw


def env_overrides(environ: typing.Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Read SOLLAMA_<SECTION>_<KEY> (and the aliases) from the environment."""
    data: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for section, hints in _HINTS.items():
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

    missing = [f"{s}.{k}" for s, hints in _HINTS.items() for k in hints if k not in merged.get(s, {})]
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
