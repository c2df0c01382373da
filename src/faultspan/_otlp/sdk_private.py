"""Every access to a private name of the OpenTelemetry SDK, in one place (each one covered by a test)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes


def plain_attributes(attributes: object) -> Mapping[str, Any]:
    """The SDK's BoundedAttributes iterates through Python-level Mapping methods; its own dict does not,
    which matters on the worker that reads every attribute of every span."""
    if type(attributes) is BoundedAttributes:
        return attributes._dict
    return attributes if isinstance(attributes, Mapping) else {}
