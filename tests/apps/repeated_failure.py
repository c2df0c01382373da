"""COUNT traces, each failing with the same bug: python repeated_failure.py COUNT."""

from __future__ import annotations

import sys

from opentelemetry import trace

tracer = trace.get_tracer("repeated")


def charge(order: int) -> None:
    raise RuntimeError(f"card declined for order {order}")


def one_order(order: int) -> None:
    try:
        with tracer.start_as_current_span(f"order {order}"):
            charge(order)
    except RuntimeError:
        pass


def main(count: int) -> None:
    for order in range(count):
        one_order(order)


if __name__ == "__main__":
    main(int(sys.argv[1]))
