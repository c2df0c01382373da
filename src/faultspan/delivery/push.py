"""The push verb."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    """Placeholder until this area's verbs land."""
