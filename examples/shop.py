"""A tiny checkout service that fails, written against plain OpenTelemetry: no faultspan import.

Run it under opentelemetry-instrument with faultspan installed (see README.md): the failure is delivered with
frames, locals, chained causes and a fingerprint, and every secret below is masked before it leaves.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

tracer = trace.get_tracer("shop")
log = logging.getLogger("shop")
log.setLevel(logging.INFO)  # its info lines become the failure's breadcrumbs

# Synthetic credentials, the kind that ends up in real failures.
GATEWAY = "https://pay.example.com/v1/charge?api_key=EXAMPLEdemoKey00000000000000"
DATABASE_URL = "postgres://shop:demo-Pa55word!@db.internal:5432/orders"


class PaymentDeclined(Exception):
    pass


def charge(card_number: str, amount_cents: int) -> None:
    attempt = {"card": card_number, "amount": amount_cents, "password": "hunter2-demo"}
    log.info("charging %s cents", attempt["amount"])
    try:
        raise ConnectionError(f"gateway {GATEWAY} timed out after 3.2s")
    except ConnectionError as exc:
        raise PaymentDeclined(f"card {card_number} declined for order total {amount_cents}") from exc


def checkout(order_id: int, card_number: str) -> None:
    with tracer.start_as_current_span("checkout") as span:
        span.set_attribute("order.id", order_id)
        span.set_attribute("db.connection_string", DATABASE_URL)
        charge(card_number, amount_cents=4200)


def main() -> None:
    with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER) as request:
        request.set_attribute("http.request.header.authorization", "Bearer demo0token0abcdef0123456789")
        try:
            checkout(order_id=8812, card_number="4111 1111 1111 1111")
        except PaymentDeclined:
            log.warning("checkout failed; answering 502")
            request.set_attribute("http.response.status_code", 502)


if __name__ == "__main__":
    main()
