"""The check every faultspan instrumentor passes: idempotent, and ``uninstrument`` puts back exactly what was
there."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]


def assert_idempotent_and_reversible(
    instrumentor: BaseInstrumentor, hooks: Callable[[], list[object]]
) -> None:
    before = hooks()
    instrumentor.instrument()
    try:
        installed = hooks()
        assert all(new is not old for new, old in zip(installed, before, strict=True))
        instrumentor.instrument()  # a second call changes nothing
        assert hooks() == installed
    finally:
        instrumentor.uninstrument()
    assert all(now is old for now, old in zip(hooks(), before, strict=True))
