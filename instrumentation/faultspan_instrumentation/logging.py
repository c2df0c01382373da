"""``faultspan_logging``: log records become breadcrumbs; ``logger.exception()`` and any record at ERROR or
above with ``exc_info`` is captured as an exception.

The records go to a :class:`faultspan.BreadcrumbHandler` through a wrap of ``logging.Logger.callHandlers``
(as Sentry does), not by adding that handler to the root logger: a root handler would make
``logging.basicConfig()`` a silent no-op for the application and switch off ``logging.lastResort`` (asyncio's
"Task exception was never retrieved" would vanish from stderr). The wrap also sees loggers with
``propagate=False``. Logger levels are never changed: a record its logger filters out (the root logger
defaults to WARNING) is never created, so it cannot become a breadcrumb. Records of faultspan's and
OpenTelemetry's own loggers are left out, so exporting a breadcrumb can never log one more. Messages are
masked by the span processor like every other attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from faultspan._capture.runtime import current
from faultspan._pipeline.api import BreadcrumbHandler
from faultspan._pipeline.log_processor import handling
from faultspan_instrumentation._base import Patches

_OWN_LOGGERS = ("faultspan", "opentelemetry")


def _not_own(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] not in _OWN_LOGGERS


def _call_handlers(handler: logging.Handler) -> Callable[[Any], Any]:
    def make(previous: Callable[[logging.Logger, logging.LogRecord], None]) -> Any:
        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            # While the handlers run, faultspan's log processor can reach the record's live exception and
            # note that an OpenTelemetry handler made a log record of it.
            with handling(record):
                previous(logger, record)
                if record.levelno >= handler.level and is_instrumentation_enabled():
                    handler.handle(record)

        return call_handlers

    return make


class LoggingInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        handler = BreadcrumbHandler(current().settings.log_level)
        handler.addFilter(_not_own)
        self._patches = Patches()
        self._patches.wrap(logging.Logger, "callHandlers", _call_handlers(handler))

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
