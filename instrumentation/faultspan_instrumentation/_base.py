"""What faultspan's hook-replacing instrumentors share: exact, reversible replacement of attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Patches:
    """Attributes replaced on modules or classes, each restored to exactly the object that was there."""

    def __init__(self) -> None:
        self._replaced: list[tuple[object, str, Any]] = []

    def wrap(self, owner: object, name: str, make: Callable[[Any], Any]) -> None:
        """Install ``make(previous)`` as ``owner.name``. ``previous`` is read from the owner's own namespace,
        so a class gets back its plain function, not a bound or inherited one."""
        previous = vars(owner)[name]
        self._replaced.append((owner, name, previous))
        setattr(owner, name, make(previous))

    def restore(self) -> None:
        while self._replaced:
            owner, name, previous = self._replaced.pop()
            setattr(owner, name, previous)
