"""Effective configuration: OTEL_PYTHON_FAULTSPAN_* variables, ``configure()`` options and defaults.

A malformed value never raises: it is reported once as a warning naming the variable and the default applies
(strict mode turns the warning into an exception for ``configure()`` callers who asked for it).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

PREFIX = "OTEL_PYTHON_FAULTSPAN_"
_logger = logging.getLogger("faultspan")
_warned: set[str] = set()


def _shown(logger: logging.Logger) -> bool:
    """Whether a handler other than OpenTelemetry's own will show a record of ``logger``: under
    opentelemetry-instrument the root logger may hold only an OTel handler (which also switches off
    ``logging.lastResort``), and a configuration warning must not vanish into a logs pipeline."""
    current: logging.Logger | None = logger
    handlers: list[logging.Handler] = []
    while current is not None:
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    if not handlers:
        return logging.lastResort is not None
    return any(not type(handler).__module__.startswith("opentelemetry") for handler in handlers)


def warn(message: str, *args: object) -> None:
    """A warning through logging, and on stderr when no handler would show it."""
    _logger.warning(message, *args)
    if _logger.isEnabledFor(logging.WARNING) and not _shown(_logger):
        print(message % args if args else message, file=sys.stderr)


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen; faultspan never repeats itself into the host's logs."""
    if key not in _warned:
        _warned.add(key)
        warn(message, *args)


class ConfigError(ValueError):
    pass


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError("expected true or false")


def _is_true(raw: object) -> bool:
    try:
        return raw is True or (isinstance(raw, str) and _parse_bool(raw))
    except ConfigError:
        return False


def _parse_count(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError("expected a whole number") from None
    if value < 0:
        raise ConfigError("expected a number >= 0")
    return value


def _parse_text(text: str) -> str:
    if not text.strip():
        raise ConfigError("expected a non-empty value")
    return text.strip()


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_patterns(text: str) -> tuple[str, ...]:
    """Regexes contain commas (``{2,5}``), so a JSON array of strings is accepted besides a comma list."""
    if not text.lstrip().startswith("["):
        return _parse_list(text)
    try:
        items = json.loads(text)
    except ValueError:
        raise ConfigError("expected a JSON array of strings or a comma-separated list") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError("expected a JSON array of strings")
    return tuple(items)


def _parse_callable(text: str) -> Callable[..., Any]:
    module_name, sep, attribute = text.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError("expected 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:  # an import error of any kind in the user's module
        raise ConfigError(f"cannot load {text.strip()!r}: {type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"{text.strip()!r} is not callable")
    return target  # type: ignore[no-any-return]


_PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": _parse_bool,
    "count": _parse_count,
    "text": _parse_text,
    "secret": _parse_text,
    "list": _parse_list,
    "patterns": _parse_patterns,
    "callable": _parse_callable,
}


def _meta(kind: str, doc: str) -> dict[str, str]:
    return {"kind": kind, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """Every faultspan option; the env var is PREFIX + the upper-cased field name."""

    capture_locals: bool = field(default=True, metadata=_meta("bool", "capture local variables of frames"))
    max_frames: int = field(default=100, metadata=_meta("count", "frames kept per exception (head and tail)"))
    max_locals: int = field(default=30, metadata=_meta("count", "variables kept per frame"))
    max_repr_length: int = field(default=256, metadata=_meta("count", "characters kept per value repr"))
    max_depth: int = field(default=3, metadata=_meta("count", "nesting depth of container reprs"))
    max_locals_bytes: int = field(
        default=32768, metadata=_meta("count", "total bytes of locals per exception, innermost frames first")
    )
    max_chain_depth: int = field(default=5, metadata=_meta("count", "cause/context links followed"))
    max_group_width: int = field(default=10, metadata=_meta("count", "ExceptionGroup members kept per group"))
    max_breadcrumbs: int = field(default=100, metadata=_meta("count", "breadcrumbs kept per context"))
    redact: bool = field(default=True, metadata=_meta("bool", "mask secrets before export"))
    redact_keys: tuple[str, ...] = field(default=(), metadata=_meta("list", "extra secret key names"))
    redact_allow_keys: tuple[str, ...] = field(
        default=(), metadata=_meta("list", "keys never masked by name")
    )
    redact_patterns: tuple[str, ...] = field(
        default=(), metadata=_meta("patterns", "extra secret regexes (comma list or JSON array)")
    )
    redact_disable_rules: tuple[str, ...] = field(
        default=(), metadata=_meta("list", "built-in rules to turn off")
    )
    redact_callback: Callable[..., Any] | None = field(
        default=None, metadata=_meta("callable", "module:function called as f(path, text) -> text | None")
    )
    fingerprint_callback: Callable[..., Any] | None = field(
        default=None, metadata=_meta("callable", "module:function called as f(exception, default) -> key")
    )
    package_dir: str = field(
        default="./.faultspan/", metadata=_meta("text", "where the faultspan exporter writes .fspkg packages")
    )
    package_queue_size: int = field(
        default=64, metadata=_meta("count", "batches of failing traces waiting for the package writer")
    )
    package_wait_seconds: int = field(
        default=5, metadata=_meta("count", "longest wait for a failing trace's root span to end")
    )
    package_max_per_fingerprint: int = field(
        default=10, metadata=_meta("count", "packages written per fingerprint per window; later ones counted")
    )
    package_window_seconds: int = field(
        default=3600, metadata=_meta("count", "the window of package_max_per_fingerprint")
    )
    package_max_bytes: int = field(
        default=8 * 1024 * 1024, metadata=_meta("count", "size cap of one package (outer spans shed first)")
    )
    package_dir_max_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata=_meta("count", "size budget of the package directory; oldest evicted"),
    )
    package_include_argv: bool = field(
        default=False, metadata=_meta("bool", "store the redacted command line in runtime.json")
    )
    package_include_env: bool = field(
        default=False, metadata=_meta("bool", "store the redacted environment in runtime.json")
    )
    log_level: str = field(
        default="INFO", metadata=_meta("text", "lowest level of log records kept as breadcrumbs")
    )
    http_failure_statuses: tuple[str, ...] = field(
        default=("500-599",), metadata=_meta("list", "HTTP statuses recorded as failures (codes or ranges)")
    )
    http_capture_headers: tuple[str, ...] = field(
        default=(
            "accept",
            "authorization",
            "content-type",
            "cookie",
            "referer",
            "user-agent",
            "x-request-id",
        ),
        metadata=_meta("list", "request headers recorded on server spans (credentials masked)"),
    )
    http_capture_body: bool = field(
        default=False, metadata=_meta("bool", "record request bodies of failing requests")
    )
    http_max_body_bytes: int = field(default=4096, metadata=_meta("count", "bytes kept of a request body"))
    shutdown_timeout_millis: int = field(
        default=3000, metadata=_meta("count", "longest flush at exit, on SIGTERM or after a crash")
    )
    spool_dir: str = field(
        default="./.faultspan/spool/",
        metadata=_meta(
            "text", "durable OTLP spool for batches the collector did not take, on by default ('none': off)"
        ),
    )
    spool_max_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata=_meta("count", "size budget of the spool, per destination; oldest evicted"),
    )
    signing_key: str = field(
        default="", metadata=_meta("secret", "HMAC key: packages are signed, replay refuses unsigned ones")
    )
    replay_in_otlp: bool = field(
        default=False, metadata=_meta("bool", "also export replayable call arguments over OTLP")
    )
    max_replay_bytes: int = field(
        default=65536, metadata=_meta("count", "size cap of the recorded call of a replayable capture")
    )
    queue_size: int = field(default=8192, metadata=_meta("count", "spans waiting for redaction"))
    strict: bool = field(default=False, metadata=_meta("bool", "raise internal errors instead of logging"))
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


def option_names() -> list[str]:
    return [f.name for f in fields(Settings) if f.name != "sources"]


def env_name(option: str) -> str:
    return PREFIX + option.upper()


def _metadata(option: str, item: str) -> str:
    return str(next(f.metadata[item] for f in fields(Settings) if f.name == option))


def describe(option: str) -> str:
    return _metadata(option, "doc")


def is_secret(option: str) -> bool:
    return _metadata(option, "kind") == "secret"


def _convert(option: str, raw: object) -> object:
    """A value from the environment (text) or from configure() (already typed) -> the option's type."""
    kind = _metadata(option, "kind")
    if isinstance(raw, str):
        return _PARSERS[kind](raw)
    if kind == "callable":
        if raw is None or callable(raw):
            return raw
        raise ConfigError("expected a callable or 'module:function'")
    if kind in ("list", "patterns") and isinstance(raw, (list, tuple)):
        return tuple(str(item) for item in raw)
    if kind in ("text", "secret") and isinstance(raw, os.PathLike):
        return _parse_text(os.fspath(raw))
    if kind == "bool" and isinstance(raw, bool):
        return raw
    if kind == "count" and isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise ConfigError(f"expected {kind}, got {type(raw).__name__} {raw!r}")


def load(environ: Mapping[str, str] | None = None, options: Mapping[str, object] | None = None) -> Settings:
    """Merge defaults < environment < explicit options; bad values warn once and keep the lower layer."""
    env = os.environ if environ is None else environ
    layers = (("env", env), ("configure()", options or {}))
    strict = any(
        _is_true(layer.get(key))
        for (name, layer), key in zip(layers, (env_name("strict"), "strict"), strict=True)
    )
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for layer_name, layer in layers:
        for option in option_names():
            key = env_name(option) if layer_name == "env" else option
            if key not in layer:
                continue
            label = key if layer_name == "env" else f"configure({option}=...)"
            try:
                values[option] = _convert(option, layer[key])
            except ConfigError as exc:
                if strict:
                    raise ConfigError(f"{label}: {exc}") from None
                warn_once(f"config:{label}", "faultspan: ignoring %s: %s; using the default", label, exc)
                continue
            sources[option] = f"env {key}" if layer_name == "env" else "configure()"
    for option in option_names():
        sources.setdefault(option, "default")
    return replace(Settings(), **values, sources=sources)  # type: ignore[arg-type]
