"""Replayable callables for tests/test_replay.py.

Each one fails according to the text of a state file: ``fail`` raises ValueError, ``other`` raises
LookupError from another line (a different fingerprint), anything else returns normally. So a test can make
a replay reproduce, fail differently, or not fail, without touching the code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import faultspan


def _act(state: str, subject: object) -> str:
    mode = Path(state).read_text().strip()
    if mode == "fail":
        raise ValueError(f"cannot handle {subject!r}")
    if mode == "other":
        raise LookupError(f"no record for {subject!r}")
    return "ok"


class Tier(enum.Enum):
    GOLD = "gold"
    BASIC = "basic"


@dataclass(frozen=True)
class Order:
    number: int
    lines: tuple[str, ...]
    total: Decimal
    tier: Tier

    @faultspan.capture(replayable=True)
    def ship(self, state: str, address: str) -> str:
        return _act(state, (self.number, address))


@faultspan.capture(replayable=True)
def charge(  # noqa: PLR0917 -- one argument of each supported kind
    state: str,
    order: Order,
    when: dt.datetime,
    tags: frozenset[str],
    ratios: list[float],
    raw: bytes,
    *extra: object,
    **options: object,
) -> str:
    steps = [order.number, len(order.lines)]
    steps.append(len(tags))
    return _act(state, steps)


@faultspan.capture(replayable=True)
async def charge_async(state: str, amount: Decimal, key: uuid.UUID, due: dt.date) -> str:
    await asyncio.sleep(0)
    return _act(state, amount)


class Billing:
    @staticmethod
    @faultspan.capture(replayable=True)
    def refund(state: str, amount: Decimal, after: dt.timedelta) -> str:
        return _act(state, amount)

    @classmethod
    @faultspan.capture(replayable=True)
    def audit(cls, state: str, where: Path, numbers: dict[str, set[int]]) -> str:
        return _act(state, (cls.__name__, sorted(numbers)))


@faultspan.capture(replayable=True)
def login(state: str, user: str, password: str) -> str:
    return _act(state, user)


@faultspan.capture(replayable=True)
def notify(state: str, header: str) -> str:
    return _act(state, len(header))


@faultspan.capture(replayable=True)
def guarded(state: str, lock: object) -> str:
    return _act(state, "lock")


@faultspan.capture(replayable=True)
def bulk(state: str, blob: str) -> str:
    return _act(state, len(blob))


@faultspan.capture(replayable=True)
def reserve(state: str, sku: str) -> str:
    """Fails inside a child span: the failing span is the child, the call's document is on its parent."""
    with faultspan.guard("reserve stock", sku=sku):
        return _act(state, sku)


@faultspan.capture(replayable=True)
def count(state: str, limit: int) -> str:
    total = 0
    for number in range(limit):
        total += number
    secret = "sk_live_abcdefghijklmnop1234"
    return _act(state, (total, len(secret)))
