"""Every read of the official instrumentations' state, in one place (several names are private to them).

faultspan never second-guesses them: the HTTP semantic-convention mode is the one they read from
``OTEL_SEMCONV_STABILITY_OPT_IN`` (through their own helper, so the same value means the same thing), and
once an official instrumentor exists in the process (the loader or the user instantiated it), its decisions
stand: an app it did not instrument, or one the user un-instrumented, gets no server span from faultspan.
"""

from __future__ import annotations

import sys

from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)

from faultspan._otlp import sdk_private

# Where the official instrumentations keep their per-request state (read, never written).
FLASK_ACTIVATION = "opentelemetry-flask.activation_key"
DJANGO_ACTIVATION = "opentelemetry-instrumentor-django.activation_key"
DJANGO_EXCEPTION = "opentelemetry-instrumentor-django.exception_key"
INSTRUMENTED = "_is_instrumented_by_opentelemetry"
SCOPE_PREFIX = "opentelemetry.instrumentation."  # the tracers the official instrumentations name


def http_modes() -> tuple[bool, bool]:
    """(old, new): which HTTP semantic conventions the official instrumentations emit right now."""
    _OpenTelemetrySemanticConventionStability._initialize()  # type: ignore[no-untyped-call]
    mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP
    )
    return mode is not _StabilityMode.HTTP, mode is not _StabilityMode.DEFAULT


def in_use(module: str, name: str) -> bool:
    """Whether the official instrumentor ``module.name`` was instantiated in this process (BaseInstrumentor is
    a singleton kept as ``_instance`` on its class): then it, not faultspan, decides what gets a span."""
    instrumentor = getattr(sys.modules.get(module), name, None)
    return instrumentor is not None and vars(instrumentor).get("_instance") is not None


def app_opted(app: object) -> bool | None:
    """True or False once the official instrumentation instrumented or un-instrumented ``app``, else None."""
    return sdk_private.instrumented_by_opentelemetry(app) if hasattr(app, INSTRUMENTED) else None
