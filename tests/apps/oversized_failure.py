"""One failure whose message is a formatted 500,000-item list, then 1,000 ordinary spans with 10 failures."""

from __future__ import annotations

from opentelemetry import trace

import faultspan

tracer = trace.get_tracer("oversized")


class InventoryError(Exception):
    pass


def reconcile(items: list[int]) -> None:
    raise InventoryError(f"cannot reconcile {items}")


def main() -> None:
    with tracer.start_as_current_span("reconcile"):
        try:
            reconcile(list(range(500_000)))
        except InventoryError:
            faultspan.capture_exception()
    for number in range(1_000):
        with tracer.start_as_current_span(f"order {number}"):
            if number % 100 == 7:
                try:
                    raise ValueError(f"order {number} rejected")
                except ValueError:
                    faultspan.capture_exception()


if __name__ == "__main__":
    main()
