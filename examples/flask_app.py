"""A Flask order service that fails; faultspan captures it without any change to the request handling.

Run (port from argv, else $PORT, else 8000)::

    opentelemetry-instrument python examples/flask_app.py 8000

Failing route: ``GET /orders/<order_id>`` answers 500 (``PaymentDeclined``, chained to a ``ConnectionError``)
after a log line, a breadcrumb and an outgoing call to this service's own ``/health``. ``GET /orders/0``
is a handled 404 (no exception event). Try it with synthetic credentials, which never leave the process::

    curl -H 'Authorization: Bearer demo0token0abcdef0123456789' \\
         'http://127.0.0.1:8000/orders/7?marker=m1&api_key=EXAMPLEdemoKey00000000000000'
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request

from flask import Flask, abort, request
from werkzeug.serving import make_server

import faultspan

log = logging.getLogger("orders")
app = Flask(__name__)
PORT = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8000"))


class PaymentDeclined(Exception):
    pass


@app.get("/health")
def health() -> str:
    return "ok"


def charge(order_id: int, marker: str) -> None:
    card_number = "4111 1111 1111 1111"  # synthetic: masked in the captured locals
    try:
        raise ConnectionError(f"gateway timed out charging order {order_id}")
    except ConnectionError as exc:
        raise PaymentDeclined(f"card {card_number} declined (request {marker})") from exc


@app.get("/orders/<int:order_id>")
def order(order_id: int) -> str:
    marker = request.args.get("marker", "-")
    if order_id == 0:
        abort(404)
    log.warning("loading order %s for request %s", order_id, marker)
    faultspan.breadcrumb("orders", f"charging order {order_id}", marker=marker)
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health?marker={marker}", timeout=5) as answer:
        answer.read()
    charge(order_id, marker)
    return "paid"


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    server = make_server("127.0.0.1", PORT, app, threaded=True)
    print(f"listening on http://127.0.0.1:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
