"""faultspan: Sentry-grade failure capture inside plain OpenTelemetry."""

from faultspan._pipeline.api import BreadcrumbHandler, breadcrumb, capture, capture_exception, guard
from faultspan._pipeline.distro import configure
from faultspan._pipeline.scope import context

__all__ = [
    "BreadcrumbHandler",
    "breadcrumb",
    "capture",
    "capture_exception",
    "configure",
    "context",
    "guard",
]
