"""faultspan: Sentry-grade failure capture inside plain OpenTelemetry."""

from faultspan.api import BreadcrumbHandler, breadcrumb, capture, capture_exception, guard
from faultspan.distro import configure
from faultspan.scope import context

__all__ = [
    "BreadcrumbHandler",
    "breadcrumb",
    "capture",
    "capture_exception",
    "configure",
    "context",
    "guard",
]
