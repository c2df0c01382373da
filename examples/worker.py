"""An asyncio order worker, written against plain OpenTelemetry: no faultspan import.

Run it under opentelemetry-instrument with faultspan installed; each argument is an order id::

    OTEL_SERVICE_NAME=worker OTEL_TRACES_EXPORTER=faultspan OTEL_METRICS_EXPORTER=none \\
        OTEL_LOGS_EXPORTER=none opentelemetry-instrument python examples/worker.py 7 13 -2

Documented failing inputs:

- ``13``: the order's fire-and-forget audit task fails (``KeyError: 'region'``) and nobody awaits it. asyncio
  prints "Task exception was never retrieved"; faultspan records it (``faultspan.unhandled.hook=asyncio``).
- a negative id: rejected with ``ValueError`` that nobody catches, so the worker dies with exit status 1.
  The failure is recorded on its ``process order`` span with the query and log lines that led to it, and
  flushed before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from typing import Any

from opentelemetry import trace

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
log = logging.getLogger("worker")
tracer = trace.get_tracer("worker")


async def audit(order: dict[str, Any]) -> None:
    customer = order["customer"]
    log.info("auditing order %s for %s", order["id"], customer["name"])
    region = customer["region"]
    log.info("order %s audited in %s", order["id"], region)


async def process(database: sqlite3.Connection, order_id: int) -> None:
    with tracer.start_as_current_span("process order") as span:
        span.set_attribute("order.id", order_id)
        row = database.execute("select name, region from customers where id = ?", (abs(order_id),)).fetchone()
        customer = {"name": row[0], "region": row[1]} if row[1] else {"name": row[0]}
        log.info("processing order %d for %s", order_id, customer["name"])
        if order_id < 0:
            raise ValueError(f"order id {order_id} is negative")
        asyncio.create_task(audit({"id": order_id, "customer": customer}))  # noqa: RUF006 -- the bug
        await asyncio.sleep(0)


async def main(order_ids: list[int]) -> None:
    database = sqlite3.connect(":memory:")
    database.execute("create table customers (id integer primary key, name text, region text)")
    database.executemany(
        "insert into customers values (?, ?, ?)", [(2, "Ada", "eu"), (7, "Grace", "us"), (13, "Alan", None)]
    )
    for order_id in order_ids:
        await process(database, order_id)


if __name__ == "__main__":
    asyncio.run(main([int(argument) for argument in sys.argv[1:]]))
