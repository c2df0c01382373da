"""A job that asks a local HTTP service twice (urllib, then requests), queries sqlite, then fails.

No faultspan import: run it under opentelemetry-instrument. The HTTP service runs in this process on a free
loopback port; ``/stock/...`` answers 200, ``/gone/...`` 404, anything else 503.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
import urllib.request

import requests
from opentelemetry import trace

API_KEY = "EXAMPLEsecretKey000111222333"  # synthetic; must never leave the process


class Inventory(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"quantity": 2}).encode()
        status = 200 if self.path.startswith("/stock/") else 404 if self.path.startswith("/gone/") else 503
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: stderr stays the application's."""


def serve() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Inventory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def reserve(base: str, sku: str, quantity: int) -> None:
    with urllib.request.urlopen(f"{base}/stock/{sku}") as response:
        stock = json.load(response)["quantity"]
    price = requests.get(f"{base}/price/{sku}", params={"api_key": API_KEY}, timeout=10)
    database = sqlite3.connect(":memory:")
    (reserved,) = database.cursor().execute("select 1 as reserved").fetchone()
    database.close()
    if stock + reserved < quantity:
        raise ValueError(f"sku {sku}: {stock} in stock, {quantity} wanted, price service {price.status_code}")


def main() -> None:
    base = serve()
    try:
        with trace.get_tracer("app").start_as_current_span("job"):
            reserve(base, "A-7", 5)
    except ValueError:
        pass


if __name__ == "__main__":
    main()
