"""faultspan: Sentry-grade failure capture inside plain OpenTelemetry.

The public names are loaded on first use (PEP 562), so ``import faultspan`` and the CLI's verbs that do not
record anything (``--version``, ``config``, ``list``) do not import the OpenTelemetry SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultspan._pipeline.api import BreadcrumbHandler, breadcrumb, capture, capture_exception, guard
    from faultspan._pipeline.distro import configure
    from faultspan._pipeline.scope import context

_HOMES = {
    "BreadcrumbHandler": "faultspan._pipeline.api",
    "breadcrumb": "faultspan._pipeline.api",
    "capture": "faultspan._pipeline.api",
    "capture_exception": "faultspan._pipeline.api",
    "configure": "faultspan._pipeline.distro",
    "context": "faultspan._pipeline.scope",
    "guard": "faultspan._pipeline.api",
}

__all__ = [
    "BreadcrumbHandler",
    "breadcrumb",
    "capture",
    "capture_exception",
    "configure",
    "context",
    "guard",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'faultspan' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
