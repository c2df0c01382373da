"""A Flask view that opens an inner span around the failing call: one exception, recorded on the inner span
and on the request's server span. Plain Flask and OpenTelemetry: run it under opentelemetry-instrument."""

from __future__ import annotations

import flask
from opentelemetry import trace

app = flask.Flask("grouping")
tracer = trace.get_tracer("shop")


def charge(order_id: int) -> None:
    raise LookupError(f"card PN-{order_id}-C declined")


@app.route("/orders/<int:order_id>/pay")
def pay(order_id: int) -> str:
    with tracer.start_as_current_span("charge"):
        charge(order_id)
    return "paid"


if __name__ == "__main__":
    client = app.test_client()
    for order_id in (8812, 17):
        assert client.get(f"/orders/{order_id}/pay").status_code == 500
