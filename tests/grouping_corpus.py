"""A grouping corpus: the failures of a small order service, each bug reached from three entry points (an
API handler, a background worker, a nightly batch) with varying data, plus look-alike bugs that must stay
apart.

The messages are the real ones: the stdlib (json, datetime, decimal, sqlite3, codecs, files) and
requests/httpx raise them here; SQLAlchemy's and Django's are built the way those libraries build them
(neither is needed to run this). ``failures()`` raises every case and returns it with the bug it belongs to;
``pair_scores`` is the pairwise precision and recall of a key over them.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import requests


@dataclass(frozen=True)
class Failure:
    bug: str
    caller: str
    exc: BaseException


# --- the service: library-style errors -------------------------------------------------------------------


class UpstreamError(Exception):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class IntegrityError(Exception):
    """SQLAlchemy's wrapper of a DBAPI error: ``(module.Type) message``, the statement, its parameters."""

    @classmethod
    def wrap(cls, error: sqlite3.Error, statement: str, parameters: tuple[Any, ...]) -> IntegrityError:
        return cls(
            f"({type(error).__module__}.{type(error).__name__}) {error}\n[SQL: {statement}]\n"
            f"[parameters: {parameters!r}]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)"
        )


class DoesNotExist(Exception):
    pass


class MultipleObjectsReturned(Exception):
    pass


class ValidationError(Exception):
    pass


def _database() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE users (email TEXT UNIQUE, username TEXT UNIQUE)")
    connection.execute("CREATE TABLE orders (customer_id INTEGER NOT NULL, total REAL)")
    connection.execute("INSERT INTO users VALUES ('taken@example.com', 'taken')")
    return connection


# --- the service: the raising functions (one crash site each, unless a look-alike shares it) ----------------


def parse_body(body: str) -> Any:
    return json.loads(body)


def parse_event(line: str) -> Any:
    return json.loads(line)


def parse_ship_date(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d")


def parse_birthday(text: str) -> date:
    return date.fromisoformat(text)


def parse_amount(text: str) -> Decimal:
    return Decimal(text)


def unit_price(row: dict[str, str]) -> Decimal:
    """Three different bugs at one line: a bad amount, a zero quantity, no quantity."""
    return Decimal(row["amount"]) / Decimal(row["qty"])


def parse_quantity(text: str) -> int:
    return int(text)


def require_setting(name: str) -> str:
    settings = {"LOG_LEVEL": "info"}
    return settings[name]


def customer_of(payload: dict[str, Any]) -> Any:
    return payload["customer_id"]


def register(email: str, username: str) -> None:
    connection = _database()
    connection.execute("INSERT INTO users VALUES (?, ?)", (email, username))


def archived_order(order_id: int) -> Any:
    return _database().execute("SELECT * FROM orders_archive WHERE id = ?", (order_id,)).fetchone()


def save_order(total: float) -> None:
    statement = "INSERT INTO orders (customer_id, total) VALUES (?, ?)"
    parameters = (None, total)
    try:
        _database().execute(statement, parameters)
    except sqlite3.IntegrityError as error:
        raise IntegrityError.wrap(error, statement, parameters) from error


def fetch_stock(sku: str, status: int) -> None:
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response.url = f"https://inventory.example.com/v1/items/{sku}"
    response.raise_for_status()


def fetch_rates(currency: str, status: int) -> None:
    request = httpx.Request("GET", f"https://rates.example.com/v2/latest?base={currency}")
    httpx.Response(status, request=request).raise_for_status()


def charge_card(order_id: int, status: int) -> None:
    raise UpstreamError(f"payment provider failed for order {order_id}: {status}", status_code=status)


def order_by_number(number: str) -> None:
    raise DoesNotExist("Order matching query does not exist.")


def customer_by_email(count: int) -> None:
    raise MultipleObjectsReturned(f"get() returned more than one Customer -- it returned {count}!")


def validate_uuid(value: str) -> None:
    raise ValidationError(f"“{value}” is not a valid UUID.")


def shipping_label(customer: Any) -> str:
    return str(customer.address)


def find_part(part: str, catalog: str) -> None:
    raise LookupError(f"part {part} not found in catalog {catalog}")


def redeem(code: str, tenant: str) -> None:
    raise ValueError(f"coupon {code!r} expired for tenant {tenant}")


def check_access(username: str, host: str) -> None:
    raise PermissionError(f"user {username} is not allowed on host {host}")


def connect(seconds: float, address: str) -> None:
    raise TimeoutError(f"timed out after {seconds}s connecting to {address}:5432")


def read_invoice(path: str) -> bytes:
    return Path(path).read_bytes()


def decode_upload(data: bytes) -> str:
    return data.decode("utf-8")


def parse_when(text: str) -> None:
    raise ValueError(f"cannot parse {text}")


def account_for(email: str) -> None:
    raise KeyError(f"no account for {email}")


class DisallowedHost(Exception):
    pass


class UniqueViolation(Exception):
    pass


class ClientError(Exception):
    pass


class ParserError(ValueError):
    pass


class PydanticValidationError(ValueError):
    pass


def order_id_field(value: str) -> None:
    raise ValueError(f"Field 'id' expected a number but got {value!r}.")


def check_host(host: str) -> None:
    name = host.split(":", maxsplit=1)[0]
    raise DisallowedHost(
        f"Invalid HTTP_HOST header: {host!r}. You may need to add {name!r} to ALLOWED_HOSTS."
    )


def insert_customer(email: str) -> None:
    raise UniqueViolation(
        'duplicate key value violates unique constraint "users_email_key"\n'
        f"DETAIL:  Key (email)=({email}) already exists."
    )


def cache_get(host: str) -> None:
    raise ConnectionError(f"Error 111 connecting to {host}:6379. Connection refused.")


def download(code: str, key: str) -> None:
    messages = {"NoSuchKey": "The specified key does not exist.", "AccessDenied": "Access Denied"}
    raise ClientError(f"An error occurred ({code}) when calling the GetObject operation: {messages[code]}")


def parse_free_date(text: str) -> None:
    raise ParserError(f"Unknown string format: {text}")


def validate_quantity(value: str) -> None:
    raise PydanticValidationError(
        "1 validation error for Order\nquantity\n  Input should be a valid integer, unable to parse string"
        f" as an integer [type=int_parsing, input_value={value!r}, input_type=str]"
    )


# --- entry points: the same bug reached through different in-app call paths --------------------------------

Raiser = Callable[..., object]


def api_handler(raiser: Raiser, *args: Any) -> object:
    return _api_dispatch(raiser, args)


def _api_dispatch(raiser: Raiser, args: tuple[Any, ...]) -> object:
    return raiser(*args)


def worker_job(raiser: Raiser, *args: Any) -> object:
    for attempt in range(1):
        return _worker_step(raiser, args, attempt)
    return None


def _worker_step(raiser: Raiser, args: tuple[Any, ...], attempt: int) -> object:
    return raiser(*args)


def nightly_batch(raiser: Raiser, *args: Any) -> object:
    results = [raiser(*args)]
    return results


CALLERS: dict[str, Callable[..., object]] = {
    "api": api_handler,
    "worker": worker_job,
    "batch": nightly_batch,
}

# bug -> (raising function, argument tuples: one per data value)
BUGS: dict[str, tuple[Raiser, list[tuple[Any, ...]]]] = {
    "json-empty-or-html": (parse_body, [("",), ("  <html>",), ("\n\nnot json",)]),
    "json-truncated-event": (parse_event, [('{"a": 1',), ('{"order": 8812',), ('{"sku": "PN-1"',)]),
    "strptime-format": (parse_ship_date, [("2024/01/05",), ("tomorrow noon",), ("05.01.2024",)]),
    "isoformat": (parse_birthday, [("2024/01/05",), ("01.02.1990",), ("yesterday",)]),
    "decimal-syntax": (parse_amount, [("12,50",), ("abc",), ("1.2.3",)]),
    "unit-price-bad-amount": (
        unit_price,
        [({"amount": "1,5", "qty": "2"},), ({"amount": "n/a", "qty": "4"},)],
    ),
    "unit-price-zero-qty": (unit_price, [({"amount": "12.5", "qty": "0"},), ({"amount": "3", "qty": "0"},)]),
    "unit-price-missing-qty": (unit_price, [({"amount": "12.5"},), ({"amount": "7.25"},)]),
    "int-quantity": (parse_quantity, [("three",), ("12a",), ("1.5",)]),
    "setting-database-url": (require_setting, [("DATABASE_URL",)] * 3),
    "setting-redis-url": (require_setting, [("REDIS_URL",)] * 3),
    "payload-customer": (customer_of, [({"id": 1},), ({"order": 8812, "items": []},)]),
    "unique-email": (register, [("taken@example.com", "alice"), ("taken@example.com", "bob7")]),
    "unique-username": (register, [("new1@example.com", "taken"), ("other@example.org", "taken")]),
    "no-archive-table": (archived_order, [(8812,), (17,), (3,)]),
    "order-without-customer": (save_order, [(12.5,), (99.0,), (0.5,)]),
    "stock-502": (fetch_stock, [("PN-0042-C", 502), ("PN-7731-A", 502), ("sku-9", 502)]),
    "stock-429": (fetch_stock, [("PN-0042-C", 429), ("PN-1200-B", 429), ("sku-9", 429)]),
    "rates-503": (fetch_rates, [("EUR", 503), ("USD", 503), ("JPY", 503)]),
    "rates-404": (fetch_rates, [("EUR", 404), ("XXX", 404), ("ZZZ", 404)]),
    "card-502": (charge_card, [(8812, 502), (17, 502), (40021, 502)]),
    "card-504": (charge_card, [(8812, 504), (91, 504), (5, 504)]),
    "order-missing": (order_by_number, [("A-1001",), ("B-77",), ("2024-0001",)]),
    "duplicate-customers": (customer_by_email, [(2,), (3,), (5,)]),
    "bad-uuid": (validate_uuid, [("abc-123",), ("12",), ("not-a-uuid",)]),
    "label-no-customer": (shipping_label, [(None,)] * 3),
    "part-missing": (find_part, [("PN-0042-C", "eu-2"), ("PN-7731-A", "us-1"), ("XK-19-Q", "eu-2")]),
    "coupon-expired": (redeem, [("SUMMER24", "acme7"), ("WELCOME-10", "globex"), ("bf2025", "initech3")]),
    "access-denied": (check_access, [("alice", "web-3.prod.example.com"), ("bob", "db.internal")]),
    "db-timeout": (connect, [(1.5, "10.0.0.7"), (30.0, "10.1.4.22"), (2.25, "192.168.1.9")]),
    "invoice-missing": (read_invoice, [("/srv/invoices/2024/0001.pdf",), ("/tmp/inv 17.pdf",)]),
    "upload-not-utf8": (decode_upload, [(b"\xff\xfe",), (b"abc\xe9",), (b"\x80",)]),
    "when-unparsed": (parse_when, [("tomorrow noon",), ("next friday",), ("in 3 days",)]),
    "account-by-email": (account_for, [("alice@example.com",), ("bob.smith@corp.example.org",)]),
    "django-id-not-a-number": (order_id_field, [("abc",), ("1.5x",), ("none",)]),
    "django-disallowed-host": (check_host, [("evil.example:8000",), ("10.0.0.9",), ("scanner.bad",)]),
    "pg-unique-email": (insert_customer, [("a@b.com",), ("carol@example.org",)]),
    "redis-refused": (cache_get, [("redis-1.internal",), ("10.0.3.4",), ("cache",)]),
    "s3-no-such-key": (download, [("NoSuchKey", "invoices/2024/1.pdf"), ("NoSuchKey", "a/b")]),
    "s3-access-denied": (download, [("AccessDenied", "invoices/2024/1.pdf"), ("AccessDenied", "x")]),
    "dateutil-free-text": (parse_free_date, [("next tues",), ("asdf",), ("31/31/2024",)]),
    "pydantic-quantity": (validate_quantity, [("abc",), ("1.5",), ("ten",)]),
}

# Bugs that share a crash site and type with another and are told apart by their message alone.
LOOK_ALIKES = (
    ("stock-502", "stock-429"),
    ("rates-503", "rates-404"),
    ("card-502", "card-504"),
    ("setting-database-url", "setting-redis-url"),
    ("unique-email", "unique-username"),
    ("unit-price-bad-amount", "unit-price-zero-qty"),
    ("unit-price-zero-qty", "unit-price-missing-qty"),
    ("s3-no-such-key", "s3-access-denied"),
)


def failures() -> list[Failure]:
    """Every bug through every entry point, the data values taken in turn."""
    out: list[Failure] = []
    for bug, (raiser, values) in BUGS.items():
        cycle = itertools.cycle(values)
        for caller, _ in itertools.product(CALLERS, range(max(1, len(values) - 1))):
            args = next(cycle)
            out.append(Failure(bug, caller, _raised(CALLERS[caller], raiser, *args)))
    return out


def next_release(directory: Path) -> ModuleType:
    """This service as its next release, deployed elsewhere: the same code with every line moved down and
    another path on disk; its failures must group with this release's."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "grouping_corpus.py"
    path.write_text("# release 2\n\n\n" + Path(__file__).read_text(encoding="utf-8"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(__name__, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raised(caller: Callable[..., object], *args: Any) -> BaseException:
    try:
        caller(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{args[0].__name__}{args[1:]!r} did not raise")


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    keys: int
    bugs: int


def _pairs(labels: list[str]) -> Iterator[bool]:
    for first, second in itertools.combinations(labels, 2):
        yield first == second


def pair_scores(bugs: list[str], keys: list[str]) -> Scores:
    """Pairwise: a pair of failures is predicted together when the keys match, truly when the bugs do."""
    together = list(_pairs(keys))
    truth = list(_pairs(bugs))
    both = sum(1 for predicted, actual in zip(together, truth, strict=True) if predicted and actual)
    predicted_count, actual_count = sum(together), sum(truth)
    return Scores(
        precision=both / predicted_count if predicted_count else 1.0,
        recall=both / actual_count if actual_count else 1.0,
        keys=len(set(keys)),
        bugs=len(set(bugs)),
    )
