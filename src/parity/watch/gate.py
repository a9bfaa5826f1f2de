"""Who may use the live model now: many requests at once, or one exclusive holder.

Requests (and sampled requests) enter as *shared* holders and run concurrently, as they
would without parity. The golden canary, a hot reload (``Watch.exclusive()``) and
``close()`` enter as the *exclusive* holder: new requests wait, running ones finish, then
the holder has the model to itself. A waiting exclusive holder goes before new requests,
so a busy server cannot starve the canary.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Gate:
    """A readers-writer lock with writer preference; one ``Condition`` over a plain lock,
    taken directly (in C) when nobody holds or waits for the exclusive side."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._owner: int | None = None  # thread holding the exclusive side

    def enter(self) -> None:
        """Become a shared holder (blocks while an exclusive holder runs or waits)."""
        with self._lock:  # the common case, in C: nobody exclusive
            if not (self._writer or self._writers_waiting):
                self._readers += 1
                return
        with self._cond:
            while self._writer or self._writers_waiting:
                if self._owner == threading.get_ident():  # the exclusive holder calls the pipeline itself
                    break
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        with self._lock:  # the condition's own lock: notify_all may be called under it
            self._readers -= 1
            if self._readers == 0 and self._writers_waiting:
                self._cond.notify_all()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait for running requests to finish, hold new ones off until the block ends.
        Re-entrant on the thread that holds it."""
        me = threading.get_ident()
        if self._owner == me:
            yield
            return
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer, self._owner = True, me
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._owner = False, None
                self._cond.notify_all()
