"""A job that logs at every level, leaks a credential into a log line, then logs the exception it caught.

Plain logging and OpenTelemetry, no faultspan import: run it under opentelemetry-instrument.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
orders = logging.getLogger("shop.orders")
database = logging.getLogger("shop.db")
PASSWORD = "hunter2-Pa55word"  # synthetic; must never leave the process


def load(order_id: int) -> dict[str, int]:
    stock = {"A-7": 2}
    return {"order": order_id, "quantity": stock["B-3"]}


def main() -> None:
    with trace.get_tracer("app").start_as_current_span("job"):
        orders.debug("cache warm, %d entries", 12)
        orders.info("loading order %d", 7)
        database.warning("slow connect to postgres://shop:%s@db.internal/orders", PASSWORD)
        try:
            load(7)
        except KeyError:
            orders.exception("order %d failed", 7)


if __name__ == "__main__":
    main()
