"""The process-wide settings and redactor, loaded from the environment on first use."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from faultspan._capture import config
from faultspan._capture.redaction import RedactionRules, Redactor


class Runtime:
    __slots__ = ("redactor", "settings")

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.redactor = Redactor(
            RedactionRules(
                enabled=settings.redact,
                extra_keys=settings.redact_keys,
                allow_keys=settings.redact_allow_keys,
                extra_patterns=settings.redact_patterns,
                disabled_rules=settings.redact_disable_rules,
                callback=settings.redact_callback,
            )
        )


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    global _current  # noqa: PLW0603 -- one runtime per process, replaced only by load()
    if _current is None:
        with _lock:
            if _current is None:
                _current = Runtime(config.load())
    return _current


def internal_error(key: str, what: str, err: Exception) -> None:
    """faultspan's own failure: re-raised in strict mode, otherwise logged once and never seen by the app."""
    if current().settings.strict:
        raise err
    config.warn_once(key, "faultspan: %s: %r", what, err)


def load(options: Mapping[str, object] | None = None) -> Runtime:
    global _current  # noqa: PLW0603
    runtime = Runtime(config.load(options=options))
    with _lock:
        _current = runtime
    return runtime
