"""``faultspan_exceptions``: every ``Span.record_exception`` call gets faultspan's enrichment.

The SDK has no hook for this, and processors only see the event after the exception object is gone. A
class-level wrap of ``opentelemetry.sdk.trace.Span.record_exception`` catches every path: the SDK's own
context managers, the official Flask/Django/ASGI instrumentations, and user code. Reversible.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from faultspan._pipeline import recording


class ExceptionsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ("opentelemetry-sdk >= 1.40",)

    def _instrument(self, **kwargs: Any) -> None:
        recording.wrap_record_exception()

    def _uninstrument(self, **kwargs: Any) -> None:
        recording.unwrap_record_exception()
