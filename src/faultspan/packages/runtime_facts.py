"""``runtime.json``: interpreter, platform and distributions of the process; argv and environment opt-in."""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from faultspan._capture.redaction import REDACTED, Redactor


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, str]:
    found: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _redacted_argv(argv: Sequence[str], redactor: Redactor) -> list[str]:
    """Each argument through the value rules; the value after a secret-named option (``--password x``) and
    the value of ``--token=x`` are masked by the option's name."""
    redacted: list[str] = []
    secret_next = False
    for argument in argv:
        option, equals, _ = argument.partition("=")
        if secret_next:
            redacted.append(REDACTED)
        elif equals and option.startswith("-") and redactor.is_secret_key(option.lstrip("-")):
            redacted.append(f"{option}={REDACTED}")
        else:
            redacted.append(redactor.scrub_text(argument))
        secret_next = (
            not secret_next
            and argument.startswith("-")
            and not equals
            and redactor.is_secret_key(argument.lstrip("-"))
        )
    return redacted


def runtime_facts(*, argv: bool, environment: bool, redactor: Redactor) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "distributions": _distributions(),
        "entry_point": sys.argv[0] if sys.argv else "",
    }
    if argv:
        facts["argv"] = _redacted_argv(sys.argv, redactor)
    if environment:
        variables = dict(sorted(os.environ.items()))
        facts["environment"] = redactor.scrub_attributes(variables, "environment.", []) or variables
    return facts
