"""Three bugs failing 5, 3 and 1 times, each exception escaping two nested spans.

    python failures_app.py [--configure] [--wait]

With ``--configure`` the app sets faultspan up itself (``faultspan.configure()``) instead of running under
opentelemetry-instrument. With ``--wait`` it prints ``ready`` after the failures and waits for a signal.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable

from opentelemetry import trace


def parse_quantity(attempt: int) -> None:
    raise ValueError(f"invalid quantity {attempt}x")


def find_customer(attempt: int) -> None:
    customers: dict[str, int] = {}
    customers[f"customer-{attempt}"] += 1


def split_bill(attempt: int) -> None:
    print(attempt / 0)


BUGS: list[tuple[Callable[[int], None], int]] = [(parse_quantity, 5), (find_customer, 3), (split_bill, 1)]


def main() -> None:
    if "--configure" in sys.argv:
        import faultspan

        faultspan.configure(service_name="failures")
    tracer = trace.get_tracer("failures_app")
    for bug, times in BUGS:
        for attempt in range(times):
            with (
                contextlib.suppress(ValueError, KeyError, ZeroDivisionError),
                tracer.start_as_current_span("request"),
                tracer.start_as_current_span("handler"),
            ):
                bug(attempt)
    if "--wait" in sys.argv:
        print("ready", flush=True)
        signal.pause()


if __name__ == "__main__":
    main()
