"""One bug (a declined card) raised at one line and reached from two entry points, each failure recorded on
two nested spans (the request and the charge inside it), and a second bug beside it.

Plain OpenTelemetry, no faultspan import: run it under opentelemetry-instrument, with faultspan's exception
instrumentor (live path) or without it (the SDK's own record_exception; faultspan fingerprints the text).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from opentelemetry import trace

tracer = trace.get_tracer("shop")


class PaymentError(Exception):
    pass


def charge(order_id: int) -> None:
    raise PaymentError(f"card declined for order {order_id}")


def reserve(sku: str) -> None:
    raise LookupError(f"part {sku} not found")


def checkout(order_id: int) -> None:
    with tracer.start_as_current_span("charge"):
        charge(order_id)


def renew_subscription(order_id: int) -> None:
    with tracer.start_as_current_span("charge"):
        charge(order_id)


def restock(order_id: int) -> None:
    with tracer.start_as_current_span("charge"):
        reserve(f"PN-{order_id:04d}-C")


def main() -> None:
    for entry, order_id in ((checkout, 8812), (renew_subscription, 17), (restock, 42)):
        request(entry, order_id)


def request(entry: Callable[[int], None], order_id: int) -> None:
    """Every request fails on purpose; the caller goes on with the next one."""
    with contextlib.suppress(Exception), tracer.start_as_current_span(f"request {entry.__name__}"):
        entry(order_id)


if __name__ == "__main__":
    main()
