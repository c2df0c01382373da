"""First-scan cost of the redactor: microseconds per attribute value never seen before.

    python benchmarks/redaction_speed.py [--quick]

Values are generated fresh for every round (new ids, numbers, hosts), so the clean cache never answers and
every value pays the full scan, as the first occurrence of a value does on the span path. Rounds alternate
with an empty loop over the same values (dict lookups only), whose time is subtracted; the median round is
reported, per kind of value and for two mixes: the typical attributes, and ids (UUIDs, digests, pod names)
alone and inside text.
"""

# ruff: noqa: E501 -- one attribute maker a line

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable

from faultspan._capture.redaction import Redactor

Maker = Callable[[random.Random], str]

# What HTTP, database and messaging spans carry as string attributes, one maker per attribute.
TYPICAL: dict[str, Maker] = {
    "http.request.method": lambda r: r.choice(["GET", "POST", "PUT", "DELETE"]),
    "http.route": lambda r: f"/api/v{r.randint(1, 3)}/orders/{{order_id}}/items",
    "url.path": lambda r: f"/api/v1/orders/{r.randint(1, 10**9)}/items",
    "url.full": lambda r: f"https://shop.example.com/api/v1/orders/{r.randint(1, 10**6)}?page={r.randint(1, 50)}",
    "server.address": lambda r: f"orders-{r.randint(1, 999)}.internal.example.com",
    "user_agent.original": lambda r: f"python-requests/2.{r.randint(20, 32)}.{r.randint(0, 9)}",
    "http.response.status_code": lambda r: str(r.choice([200, 201, 404, 500])),
    "db.statement": lambda r: f"SELECT id, total FROM orders WHERE customer_id = {r.randint(1, 10**6)}",
    "messaging.message.id": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "exception.type": lambda r: r.choice(["ValueError", "KeyError", "app.errors.PaymentDeclined"]),
    "exception.message": lambda r: f"order {r.randint(1, 10**6)} not found for customer {r.randint(1, 10**5)}",
    "code.function": lambda r: r.choice(["handle_checkout", "load_cart", "charge_card", "render"]),
    "code.filepath": lambda r: f"/srv/app/shop/{r.choice(['views', 'models', 'tasks'])}/orders_{r.randint(1, 99)}.py",
    "net.peer.ip": lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    "breadcrumb.message": lambda r: f"GET https://api.example.com/items?page={r.randint(1, 9)} 200",
}  # fmt: skip

K8S = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes generated name suffixes


def _hex(r: random.Random, length: int) -> str:
    return f"{r.getrandbits(length * 4):0{length}x}"


# Ids whose letters change from value to value (so their shapes never repeat), alone and inside text.
IDS: dict[str, Maker] = {
    "uuid in a path": lambda r: f"/orders/{uuid.UUID(int=r.getrandbits(128), version=4)}/items",
    "uuid in a message": lambda r: f"session {uuid.UUID(int=r.getrandbits(128), version=4)} expired",
    "url with a uuid": lambda r: f"https://shop.example.com/api/v1/sessions/{uuid.UUID(int=r.getrandbits(128), version=4)}?page={r.randint(1, 50)}",
    "trace id (32 hex)": lambda r: _hex(r, 32),
    "span id (16 hex)": lambda r: _hex(r, 16),
    "sha-1 (40 hex)": lambda r: _hex(r, 40),
    "sha-256 (64 hex)": lambda r: _hex(r, 64),
    "pod name": lambda r: f"checkout-{''.join(r.choices(K8S, k=10))}-{''.join(r.choices(K8S, k=5))}",
}  # fmt: skip


def _round(redactor: Redactor, values: list[str]) -> float:
    scrub = redactor.scrub_text
    start = time.perf_counter()
    for value in values:
        scrub(value)
    spent = time.perf_counter() - start
    empty: dict[str, str] = {}
    start = time.perf_counter()
    for value in values:
        empty.get(value)
    return (spent - (time.perf_counter() - start)) / len(values) * 1e6


def measure(makers: list[Maker], count: int, rounds: int, seed: int) -> float:
    rng = random.Random(seed)
    results = []
    for _ in range(rounds):
        values = [makers[index % len(makers)](rng) for index in range(count)]
        redactor = Redactor()  # cold caches: every value is a first scan
        results.append(_round(redactor, values))
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count, rounds = (3000, 3) if args.quick else (20000, 7)
    print(f"{'attribute':28} first scan, us per value")
    for name, maker in TYPICAL.items():
        print(f"{name:28} {measure([maker], count, rounds, 1):6.2f}")
    print(f"{'typical mix':28} {measure(list(TYPICAL.values()), count, rounds, 2):6.2f}")
    for name, maker in IDS.items():
        print(f"{name:28} {measure([maker], count, rounds, 3):6.2f}")
    print(f"{'ids mix':28} {measure(list(IDS.values()), count, rounds, 4):6.2f}")


if __name__ == "__main__":
    main()
