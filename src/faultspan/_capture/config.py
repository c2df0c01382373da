"""Effective configuration, in one place: every ``OTEL_PYTHON_FAULTSPAN_*`` variable, the ``configure()``
options, the standard OTLP exporter variables that ``faultspan push`` and ``spool --drain`` read, defaults.

``resolve()`` says, for each option, which value is in effect, where it came from, and every value that was
given but rejected (with the reason); it also names ``OTEL_PYTHON_FAULTSPAN_*`` variables that are no option
and the option each one was probably meant to be. It never logs and never raises: ``faultspan config`` prints
it. ``load()`` is what the running process uses: each problem is a warning, once, and the lower layer's value
(in the end the default) applies; strict mode raises instead.

A new option is one field of ``Settings``: its default, its kind (a parser below) and its meaning.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

PREFIX = "OTEL_PYTHON_FAULTSPAN_"
OTLP_PREFIX = "OTEL_EXPORTER_OTLP_"
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


def _compiled(patterns: Iterable[str]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:  # noqa: PERF203 -- the first bad one ends the loop
            raise ConfigError(f"invalid regex {pattern!r}: {err}") from None
    return tuple(patterns)


def _parse_patterns(text: str) -> tuple[str, ...]:
    """Regexes contain commas (``{2,5}``), so a JSON array of strings is accepted besides a comma list."""
    if not text.lstrip().startswith("["):
        return _compiled(_parse_list(text))
    try:
        items = json.loads(text)
    except ValueError:
        raise ConfigError("expected a JSON array of strings or a comma-separated list") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError("expected a JSON array of strings")
    return _compiled(items)


def _known_rules(names: tuple[str, ...]) -> tuple[str, ...]:
    """Built-in redaction rule names, checked by the redactor itself; imported only when rules are named (the
    redaction module takes ~0.15 s to import, which ``faultspan config`` need not pay otherwise)."""
    if names:
        from faultspan._capture.redaction import RedactionRules, Redactor

        problems = Redactor(RedactionRules(disabled_rules=names)).problems
        if problems:
            raise ConfigError("; ".join(problems))
    return names


def _parse_rules(text: str) -> tuple[str, ...]:
    return _known_rules(_parse_list(text))


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


def _parse_level(text: str) -> int:
    name = text.strip().upper()
    if name.isdigit():
        return int(name)
    level = logging.getLevelName(name)  # the number for a known name, else the text "Level <name>"
    if isinstance(level, int):
        return level
    raise ConfigError("expected a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL) or a number")


def _statuses(entries: Iterable[object]) -> tuple[tuple[int, int], ...]:
    ranges = []
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        low, sep, high = text.partition("-")
        try:
            bounds = (int(low), int(high if sep else low))
        except ValueError:
            raise ConfigError(f"{text!r} is not a status code or a range like 500-599") from None
        if not 100 <= bounds[0] <= bounds[1] <= 599:
            raise ConfigError(f"{text!r} is not a status code or a range within 100-599")
        ranges.append(bounds)
    return tuple(ranges)


def _parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    return _statuses(text.split(","))


_PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": _parse_bool,
    "count": _parse_count,
    "text": _parse_text,
    "secret": _parse_text,
    "list": _parse_list,
    "patterns": _parse_patterns,
    "rules": _parse_rules,
    "callable": _parse_callable,
    "level": _parse_level,
    "statuses": _parse_statuses,
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
        default=(), metadata=_meta("rules", "built-in rules to turn off")
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
    log_level: int = field(
        default=logging.INFO,
        metadata=_meta("level", "lowest level of log records kept as breadcrumbs (a name or a number)"),
    )
    http_failure_statuses: tuple[tuple[int, int], ...] = field(
        default=((500, 599),),
        metadata=_meta("statuses", "HTTP statuses recorded as failures (codes or ranges, 100-599)"),
    )
    http_capture_headers: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "list",
            "extra request headers recorded on failing requests only (credentials masked); "
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST decides for every request",
        ),
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
    keep_failed_traces: bool = field(
        default=True,
        metadata=_meta(
            "bool", "export a local trace whole when a failure is recorded in it, whatever the sampler"
        ),
    )
    keep_failed_max_traces: int = field(
        default=1024, metadata=_meta("count", "unsampled local traces held at once; the oldest is evicted")
    )
    keep_failed_max_spans: int = field(
        default=256, metadata=_meta("count", "ended spans held per unsampled local trace; later ones dropped")
    )
    keep_failed_max_bytes: int = field(
        default=16 * 1024 * 1024,
        metadata=_meta("count", "estimated bytes of all held unsampled spans; spans beyond dropped"),
    )
    metric_fingerprints: int = field(
        default=100,
        metadata=_meta("count", "distinct fingerprints on the faultspan.failures metric; beyond, '_other'"),
    )
    strict: bool = field(default=False, metadata=_meta("bool", "raise internal errors instead of logging"))
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


_DEFAULTS = Settings()


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


def display(option: str, value: object) -> object:
    """A value as ``faultspan config`` and the README show it: text, a number or a boolean; never a secret."""
    kind = _metadata(option, "kind")
    if kind == "secret":
        return "[REDACTED]" if value else ""
    if kind == "level" and isinstance(value, int):
        name = logging.getLevelName(value)
        return name if not name.startswith("Level ") else value
    if kind == "statuses" and isinstance(value, tuple):
        return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in value)
    if isinstance(value, tuple):
        return ",".join(value)
    if callable(value):
        return f"{value.__module__}:{getattr(value, '__qualname__', type(value).__qualname__)}"
    return value


def _convert(option: str, raw: object) -> object:
    """A value from the environment (text) or from configure() (already typed) -> the option's type."""
    kind = _metadata(option, "kind")
    if isinstance(raw, str):
        return _PARSERS[kind](raw)
    if kind == "callable":
        if raw is None or callable(raw):
            return raw
        raise ConfigError("expected a callable or 'module:function'")
    if kind in ("list", "patterns", "rules") and isinstance(raw, (list, tuple)):
        items = tuple(str(item) for item in raw)
        return {"patterns": _compiled, "rules": _known_rules}.get(kind, tuple)(items)
    if kind == "statuses" and isinstance(raw, (list, tuple)):
        return _statuses(raw)
    if kind in ("text", "secret") and isinstance(raw, os.PathLike):
        return _parse_text(os.fspath(raw))
    if kind == "bool" and isinstance(raw, bool):
        return raw
    if kind in ("count", "level") and isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise ConfigError(f"expected {kind}, got {type(raw).__name__} {raw!r}")


@dataclass(frozen=True)
class Rejected:
    """A value given for an option and not taken: the lower layer's value (in the end the default) applies."""

    label: str  # the variable, or ``configure(option=...)``
    given: object
    reason: str
    fallback: str  # what applies instead, as ``source`` names it

    @property
    def message(self) -> str:
        instead = "the default" if self.fallback == "default" else self.fallback
        return f"faultspan: ignoring {self.label}: {self.reason}; using {instead}"


@dataclass(frozen=True)
class Entry:
    """One option as resolved: the value in effect, where it came from, and what was rejected on the way."""

    option: str
    value: object
    source: str
    rejected: tuple[Rejected, ...] = ()

    @property
    def variable(self) -> str:
        return env_name(self.option)


@dataclass(frozen=True)
class Unknown:
    """A variable in faultspan's namespace (or a misspelt prefix) that is no option."""

    variable: str
    suggestion: str | None

    @property
    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"faultspan: {self.variable} is not a faultspan variable and is ignored{hint}"


@dataclass(frozen=True)
class Resolution:
    settings: Settings
    entries: tuple[Entry, ...]
    unknown: tuple[Unknown, ...]
    strict: bool


def _suggestion(variable: str) -> str | None:
    """The option a misspelt variable was probably meant to be: its tail after ``FAULTSPAN_`` (whatever came
    before, so ``FAULTSPAN_MAX_FRAMES`` and ``OTEL_FAULTSPAN_MAX_FRAMES`` are caught too) close to a name."""
    tail = variable.upper().partition("FAULTSPAN_")[2]
    names = [option.upper() for option in option_names()]
    close = difflib.get_close_matches(tail, names, n=1, cutoff=0.75)
    return PREFIX + close[0] if close else None


def _unknown(environ: Mapping[str, str]) -> tuple[Unknown, ...]:
    """Every unknown ``OTEL_PYTHON_FAULTSPAN_*`` variable; any other with FAULTSPAN in its name only when it
    is close to an option (a script's own ``FAULTSPAN_HOME`` is none of faultspan's business)."""
    known = {env_name(option) for option in option_names()}
    found = []
    for variable in sorted(environ):
        if variable in known or "FAULTSPAN_" not in variable.upper():
            continue
        suggestion = _suggestion(variable)
        if suggestion is not None or variable.startswith(PREFIX):
            found.append(Unknown(variable, suggestion))
    return tuple(found)


def resolve(
    environ: Mapping[str, str] | None = None, options: Mapping[str, object] | None = None
) -> Resolution:
    """Merge defaults < environment < explicit options, keeping account of every value not taken; quiet."""
    env = os.environ if environ is None else environ
    given = options or {}
    layers = (("env", env), ("configure()", given))
    strict = any(
        _is_true(layer.get(key))
        for (_, layer), key in zip(layers, (env_name("strict"), "strict"), strict=True)
    )
    values: dict[str, object] = {}
    entries = []
    for option in option_names():
        source = "default"
        rejected = []
        for layer_name, layer in layers:
            key = env_name(option) if layer_name == "env" else option
            if key not in layer:
                continue
            label, here = (
                (key, f"env {key}") if layer_name == "env" else (f"configure({option}=...)", "configure()")
            )
            try:
                values[option] = _convert(option, layer[key])
            except ConfigError as exc:
                rejected.append(Rejected(label, layer[key], str(exc), source))
                continue
            source = here
        entries.append(Entry(option, values.get(option, getattr(_DEFAULTS, option)), source, tuple(rejected)))
    sources = {entry.option: entry.source for entry in entries}
    settings = replace(_DEFAULTS, **values, sources=sources)  # type: ignore[arg-type]
    return Resolution(settings, tuple(entries), _unknown(env), strict)


def load(environ: Mapping[str, str] | None = None, options: Mapping[str, object] | None = None) -> Settings:
    """The settings in effect; a rejected value or unknown variable is a warning, once (strict: raised)."""
    resolution = resolve(environ, options)
    for entry in resolution.entries:
        for rejected in entry.rejected:
            if resolution.strict:
                raise ConfigError(f"{rejected.label}: {rejected.reason}")
            warn_once(f"config:{rejected.label}", "%s", rejected.message)
    for unknown in resolution.unknown:
        if resolution.strict:
            raise ConfigError(unknown.message.removeprefix("faultspan: "))
        warn_once(f"unknown:{unknown.variable}", "%s", unknown.message)
    return resolution.settings


def _shown_given(option: str, given: object) -> object:
    if is_secret(option):
        return "[REDACTED]"
    return given if isinstance(given, (str, int, float, bool)) else repr(given)


def report(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``faultspan config`` prints (JSON-ready): each option with the value in effect, its source, its
    default, and every value that was given but rejected; unknown variables; the standard ``OTEL_*``
    variables (headers never shown) with the reason faultspan would refuse an OTLP one."""
    env = os.environ if environ is None else environ
    resolution = resolve(env)
    rows = [
        {
            "variable": entry.variable,
            "value": display(entry.option, entry.value),
            "source": entry.source,
            "accepted": not entry.rejected,
            "rejected": [
                {"given": _shown_given(entry.option, r.given), "reason": r.reason} for r in entry.rejected
            ],
            "default": display(entry.option, getattr(_DEFAULTS, entry.option)),
            "meaning": describe(entry.option),
        }
        for entry in resolution.entries
    ]
    standard = {
        name: env[name]
        for name in sorted(env)
        if name.startswith("OTEL_") and not name.startswith(PREFIX) and "HEADERS" not in name
    }
    return {
        "faultspan": rows,
        "unknown": [{"variable": u.variable, "suggestion": u.suggestion} for u in resolution.unknown],
        "opentelemetry": standard,
        "opentelemetry_rejected": otlp_problems(env),
    }


def instrumentation_disabled(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names the instrumentor ``name`` (or is ``*``), as
    the auto-instrumentation reads it; ``configure()`` follows it too."""
    env = os.environ if environ is None else environ
    names = {item.strip() for item in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    return name in names or "*" in names


# The standard OTLP exporter variables, read as the Python SDK's exporters read them (a signal's own, such
# as ``_TRACES_``, wins over the general one; default protocol grpc; timeout in seconds), for ``faultspan
# push`` and ``faultspan spool --drain``, which must send where the application's own exporter would.
OTLP_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
OTLP_SIGNALS = ("traces",)  # the signals faultspan sends itself, whose variables ``faultspan config`` checks


def _otlp_protocol(text: str) -> str:
    if text not in OTLP_PROTOCOLS:
        raise ConfigError(f"unsupported protocol {text!r} (expected {', '.join(OTLP_PROTOCOLS)})")
    return text


def _otlp_timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ConfigError(f"{text!r} is not a positive number of seconds")
    return seconds


def _otlp_compression(text: str) -> str:
    if text not in ("none", "gzip"):
        raise ConfigError(f"unsupported compression {text!r} (expected gzip or none)")
    return text


_OTLP_CHECKS: dict[str, Callable[[str], object]] = {
    "PROTOCOL": _otlp_protocol,
    "TIMEOUT": _otlp_timeout,
    "COMPRESSION": _otlp_compression,
}


@dataclass(frozen=True)
class OtlpTarget:
    protocol: str
    url: str
    timeout: float
    gzip: bool
    insecure: bool
    certificate: str | None
    headers: str  # ``key=value,...`` as given (credentials: parsed by the transport, never shown)


def otlp_variable(environ: Mapping[str, str], name: str, signal: str = "traces") -> tuple[str, str | None]:
    """The variable that sets ``name`` for ``signal``, and its value (None when neither is set)."""
    for variable in (f"{OTLP_PREFIX}{signal.upper()}_{name}", f"{OTLP_PREFIX}{name}"):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return f"{OTLP_PREFIX}{name}", None


def _otlp_checked(environ: Mapping[str, str], name: str, signal: str, default: Any) -> Any:
    variable, text = otlp_variable(environ, name, signal)
    if text is None:
        return default
    try:
        return _OTLP_CHECKS[name](text)
    except ConfigError as err:
        raise ConfigError(f"{variable}: {err}") from None


def _otlp_url(protocol: str, signal: str, environ: Mapping[str, str]) -> str:
    variable, given = otlp_variable(environ, "ENDPOINT", signal)
    if protocol == "grpc":
        url = given or "http://localhost:4317"
    elif given and variable != f"{OTLP_PREFIX}ENDPOINT":  # the signal's URL is used as it is
        url = given
    else:  # the general endpoint is a base URL
        url = f"{(given or 'http://localhost:4318').removesuffix('/')}/v1/{signal}"
    if protocol != "grpc" and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{variable}: {url!r} is not an http:// or https:// URL")
    return url


def otlp_target(environ: Mapping[str, str] | None = None, signal: str = "traces") -> OtlpTarget:
    """Where ``signal`` goes; raises ``ConfigError`` naming the malformed variable (push: a usage error)."""
    env = os.environ if environ is None else environ
    protocol = _otlp_checked(env, "PROTOCOL", signal, "grpc")
    url = _otlp_url(protocol, signal, env)
    timeout = _otlp_checked(env, "TIMEOUT", signal, 10.0)
    compression = _otlp_checked(env, "COMPRESSION", signal, "none")
    scheme = urlsplit(url).scheme
    insecure = otlp_variable(env, "INSECURE", signal)[1]
    return OtlpTarget(
        protocol=protocol,
        url=url,
        timeout=timeout,
        gzip=compression == "gzip",
        insecure=scheme != "https" and (insecure.lower() == "true" if insecure else scheme == "http"),
        certificate=otlp_variable(env, "CERTIFICATE", signal)[1],
        headers=otlp_variable(env, "HEADERS", signal)[1] or "",
    )


def otlp_problems(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every set OTLP variable of ``OTLP_SIGNALS`` faultspan would refuse, with the reason (for ``faultspan
    config``)."""
    env = os.environ if environ is None else environ
    problems: dict[str, str] = {}
    for signal in OTLP_SIGNALS:
        for name, check in _OTLP_CHECKS.items():
            for variable in (f"{OTLP_PREFIX}{signal.upper()}_{name}", f"{OTLP_PREFIX}{name}"):
                text = env.get(variable, "").strip()
                try:
                    if text:
                        check(text)
                except ConfigError as err:
                    problems[variable] = str(err)
        try:
            _otlp_url(_otlp_checked(env, "PROTOCOL", signal, "grpc"), signal, env)
        except ConfigError as err:
            variable, _, reason = str(err).partition(": ")
            problems.setdefault(variable, reason)
        problems.update(_pem_problems(env, signal))
    return problems


_PEM_FILES = ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
_PEM_HEAD = 65536  # a PEM block starts within the first 64 KiB of a certificate or key file


def _pem_problems(environ: Mapping[str, str], signal: str) -> dict[str, str]:
    """The TLS files the variables name that cannot be used: missing, unreadable, not PEM, or a client key
    without its certificate (the exporter and ``faultspan push`` would fail at the first send)."""
    problems: dict[str, str] = {}
    for name in _PEM_FILES:
        variable, path = otlp_variable(environ, name, signal)
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                head = file.read(_PEM_HEAD)
        except OSError as err:
            problems[variable] = f"cannot read {path} ({err.strerror or err})"
            continue
        if b"-----BEGIN " not in head:
            problems[variable] = f"{path} is not a PEM file (no -----BEGIN line)"
    key_variable, key = otlp_variable(environ, "CLIENT_KEY", signal)
    if key is not None and otlp_variable(environ, "CLIENT_CERTIFICATE", signal)[1] is None:
        problems.setdefault(key_variable, f"set without {OTLP_PREFIX}CLIENT_CERTIFICATE")
    return problems
