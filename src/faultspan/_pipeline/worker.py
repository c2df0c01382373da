"""One bounded queue drained in rounds by one daemon thread: the shape of every faultspan queue.

Producers append without a lock (a deque append is atomic under the GIL) and wake the thread only once a
batch is ready, so the thread that ends a span pays for one append. A round runs when a batch is ready,
when ``wake()`` is called, when a flush or shutdown asks for one, and otherwise every ``interval()``
seconds (``None``: only when woken). ``process(items, final)`` gets at most ``batch`` items per call and is
called at least once per round (with an empty list when nothing was queued), so timer-driven work fits
too; ``final`` is True in a round a flush or shutdown asked for.

After a fork the child gets a fresh lock, queue and thread: the parent's items stay with the parent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
_logger = logging.getLogger("faultspan")

BATCH = 512
INTERVAL_SECONDS = 0.1


def _every_interval() -> float:
    return INTERVAL_SECONDS


class Worker(Generic[T]):
    def __init__(
        self,
        name: str,
        process: Callable[[list[T], bool], None],
        *,
        capacity: int,
        batch: int = BATCH,
        wake_at: int | None = None,
        interval: Callable[[], float | None] = _every_interval,
        overflow: Callable[[list[T]], None] | None = None,
        forked: Callable[[], None] | None = None,
        awake: bool = False,
    ) -> None:
        """``wake_at`` (default ``batch``): how many queued items wake the thread before its interval is
        over. ``overflow``: when the queue is full, the oldest ``batch`` items are handed to it on the
        producer's thread to make room (without one, the new item is refused). ``forked`` runs in a forked
        child before its new thread starts. ``awake``: the thread's first round runs at once (in a child
        too)."""
        self.name = name
        self._process = process
        self._capacity = capacity
        self._batch = max(batch, 1)
        self._wake_at = self._batch if wake_at is None else max(wake_at, 1)
        self._interval = interval
        self._overflow = overflow
        self._forked = forked
        self._awake = awake
        self._stopping = False
        self._start()
        if hasattr(os, "register_at_fork"):
            restart = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (method := restart()) and method())

    def _start(self) -> None:
        self._queue: deque[T] = deque()
        self._condition = threading.Condition()
        self._take_lock = threading.Lock()  # the worker and an overflow on a producer both take items
        self._round_lock = threading.Lock()  # rounds run one at a time, on the worker or on a caller
        self._woken = self._awake
        self._flush_requested = 0
        self._flush_done = 0
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        if self._stopping:
            return
        if self._forked is not None:
            self._forked()
        self._start()

    @property
    def pending(self) -> int:
        """Items queued and not yet taken by a round."""
        return len(self._queue)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def put(self, item: T) -> bool:
        """Queue ``item``; False when it was refused (stopping, or full without an overflow handler)."""
        if self._stopping:
            return False
        queue = self._queue
        if len(queue) >= self._capacity:
            if self._overflow is None:
                return False
            self._overflow(self.take(self._batch))
        queue.append(item)
        if len(queue) >= self._wake_at:
            self.wake()
        return True

    def take(self, count: int) -> list[T]:
        """Up to ``count`` of the oldest queued items, removed from the queue."""
        queue = self._queue
        with self._take_lock:
            return [queue.popleft() for _ in range(min(count, len(queue)))]

    def wake(self) -> None:
        """Run a round now, whatever is queued."""
        with self._condition:
            self._woken = True
            self._condition.notify()

    def _ready(self) -> bool:
        return (
            self._woken
            or self._stopping
            or self._flush_requested != self._flush_done
            or len(self._queue) >= self._wake_at
        )

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._ready():
                    self._condition.wait(self._interval())
                self._woken = False
                stopping = self._stopping
                target = self._flush_requested
            self._round(final=stopping or target != self._flush_done)
            with self._condition:
                self._flush_done = target
                self._condition.notify_all()
            if stopping:
                return

    def _round(self, *, final: bool) -> None:
        with self._round_lock:
            self._call(self.take(self._batch), final)
            while self._queue:
                self._call(self.take(self._batch), final)

    def _call(self, items: list[T], final: bool) -> None:
        try:
            self._process(items, final)
        except Exception:  # the thread must survive whatever one round raised
            _logger.exception("faultspan: %s worker round failed", self.name)

    def flush(self, timeout: float) -> bool:
        """Run a final round and wait up to ``timeout`` seconds for it (on this thread if the worker died);
        True when it ran, False after shutdown."""
        with self._condition:
            if self._stopping and not self._thread.is_alive():
                return False
            if self._thread.is_alive():
                self._flush_requested += 1
                target = self._flush_requested
                self._condition.notify_all()
                finished = self._condition.wait_for(
                    lambda: self._flush_done >= target or not self._thread.is_alive(), timeout=max(timeout, 0)
                )
                if not finished:
                    return False
                if self._flush_done >= target:
                    return True
        self._round(final=True)
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new items, run the last round and wait up to ``timeout`` seconds for it; True when the
        thread finished (items that slipped in meanwhile are then processed on this thread)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._queue:
            self._round(final=True)
        return True


class Downstream(Protocol):
    def force_flush(self, timeout_millis: int = 30000) -> bool: ...

    def shutdown(self) -> None: ...


def flush_through(worker: Worker[Any], downstream: Iterable[Downstream], timeout_millis: int) -> bool:
    """A processor's flush: its worker's queue first, then each downstream processor with the time left."""
    deadline = time.monotonic() + timeout_millis / 1000
    if not worker.flush(timeout_millis / 1000):
        return False
    ok = True
    for processor in downstream:
        remaining = int(max(deadline - time.monotonic(), 0) * 1000)
        ok = processor.force_flush(remaining) and ok
    return ok


def shut_down_through(worker: Worker[Any], downstream: Iterable[Downstream]) -> None:
    """A processor's shutdown: its worker's last round, then each downstream processor."""
    worker.shutdown()
    for processor in downstream:
        processor.shutdown()
