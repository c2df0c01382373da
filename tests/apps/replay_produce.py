"""Runs every replayable target of replay_targets once (run under opentelemetry-instrument with the faultspan
exporter): each failing call becomes one package. Usage: python replay_produce.py STATE_FILE"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from opentelemetry import trace
from replay_targets import (
    Billing,
    Order,
    Tier,
    bulk,
    charge,
    charge_async,
    count,
    guarded,
    login,
    notify,
    reserve,
)

state = sys.argv[1]
order = Order(7, ("tea", "cake"), Decimal("12.50"), Tier.GOLD)
when = dt.datetime(2026, 11, 30, 9, 15, 1, 250, tzinfo=dt.timezone(dt.timedelta(hours=1)))
calls: list[Callable[[], object]] = [
    lambda: charge(
        state,
        order,
        when,
        frozenset({"a", "b"}),
        [0.1, float("nan"), -0.0, float("inf")],
        b"\x00\xff",
        None,
        True,
        mode="fast",
        retries=(1, 2),
    ),
    lambda: asyncio.run(charge_async(state, Decimal("-0.00"), uuid.UUID(int=42), dt.date(2026, 2, 28))),
    lambda: Billing.refund(state, Decimal("1E+3"), dt.timedelta(days=1, microseconds=5)),
    lambda: Billing.audit(state, Path("/srv/x y"), {"odd": {1, 3}, "even": set()}),
    lambda: order.ship(state, "1 Main St"),
    lambda: login(state, "ada", "not-telling"),
    lambda: notify(state, "Bearer abcdefghijklmnopqrstuvwxyz0123456789"),
    lambda: guarded(state, threading.Lock()),
    lambda: bulk(state, "x" * 10_000),
    lambda: count(state, 4),
]


def reserve_in_a_request() -> None:
    with trace.get_tracer(__name__).start_as_current_span("request"):
        reserve(state, "tea")


calls.append(reserve_in_a_request)
for call in calls:
    with contextlib.suppress(ValueError, LookupError):
        call()
