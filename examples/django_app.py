"""A single-file Django order service that fails; faultspan captures it with no change to the views.

This file is the settings module, the URLconf and the views. Run it from the repository root (port from
argv, else $PORT, else 8000); the settings module must be importable when the instrumentation starts::

    PYTHONPATH=examples DJANGO_SETTINGS_MODULE=django_app \\
        opentelemetry-instrument python examples/django_app.py 8000

Failing route: ``GET /orders/<order_id>`` answers 500 (``PaymentDeclined``, chained to a ``ConnectionError``)
after a log line, a breadcrumb and an outgoing call to this service's own ``/health``. ``GET /orders/0``
is a handled 404 (no exception event). Try it with synthetic credentials, which never leave the process::

    curl -H 'Authorization: Bearer demo0token0abcdef0123456789' \\
         'http://127.0.0.1:8000/orders/7?marker=m1&api_key=EXAMPLEdemoKey00000000000000'
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path

import faultspan

DEBUG = False
SECRET_KEY = "django-insecure-example-only"  # synthetic
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "django_app"
MIDDLEWARE = ["django_app.bearer_auth"]
INSTALLED_APPS: list[str] = []
USE_TZ = True
PORT = int(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1].isdigit() else os.environ.get("PORT", "8000"))

log = logging.getLogger("orders")


class PaymentDeclined(Exception):
    pass


class DemoUser:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


def bearer_auth(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Token authentication, as an API would do it (a real one looks the token up): faultspan reports the
    authenticated ``request.user`` as ``user.id``."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            request.user = DemoUser(pk=42)
        return get_response(request)

    return middleware


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def charge(order_id: int, marker: str) -> None:
    card_number = "4111 1111 1111 1111"  # synthetic: masked in the captured locals
    try:
        raise ConnectionError(f"gateway timed out charging order {order_id}")
    except ConnectionError as exc:
        raise PaymentDeclined(f"card {card_number} declined (request {marker})") from exc


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    marker = request.GET.get("marker", "-")
    if order_id == 0:
        raise Http404("no such order")
    log.warning("loading order %s for request %s", order_id, marker)
    faultspan.breadcrumb("orders", f"charging order {order_id}", marker=marker)
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health?marker={marker}", timeout=5) as answer:
        answer.read()
    charge(order_id, marker)
    return HttpResponse("paid")


urlpatterns = [path("health", health), path("orders/<int:order_id>", order)]


def main() -> None:
    from django.conf import settings
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    if (
        os.environ.get("DJANGO_SETTINGS_MODULE") != "django_app"
        or getattr(settings, "ROOT_URLCONF", None) != "django_app"
    ):
        sys.exit(
            "django_app: run with PYTHONPATH=examples DJANGO_SETTINGS_MODULE=django_app (see the docstring)"
        )
    logging.basicConfig(level=logging.INFO)
    run("127.0.0.1", PORT, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
