"""Who may use the live model now: many requests at once, or one exclusive holder.

Requests (and sampled requests) enter as *shared* holders and run concurrently, as they
would without parity. The golden canary, a hot reload (``Watch.exclusive()``) and
``close()`` enter as the *exclusive* holder: new requests wait, running ones finish, then
the holder has the model to itself. A waiting exclusive holder goes before new requests,
so a busy server cannot starve the canary.

The shared side takes no lock while nobody is exclusive: a holder appends to
:attr:`Gate.holders` (``list.append`` and ``list.pop`` are atomic) and then reads
:attr:`Gate.blocked`; the exclusive side sets ``blocked`` and then waits until
``holders`` is empty. Whichever order the two threads run in, either the holder sees
``blocked`` and gives way, or the exclusive side sees the holder and waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Gate:
    """A readers-writer lock with writer preference, lock-free on the shared side while no
    exclusive holder runs or waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        #: one entry per shared holder now (append on enter, pop on leave)
        self.holders: list[None] = []
        #: an exclusive holder runs or waits (written under the condition's lock)
        self.blocked = False
        self._writer = False
        self._writers_waiting = 0
        self._owner: int | None = None  # thread holding the exclusive side

    def enter(self) -> None:
        """Become a shared holder (blocks while an exclusive holder runs or waits)."""
        self.holders.append(None)
        if self.blocked:
            self.give_way()

    def give_way(self) -> None:
        """:meth:`enter`'s slow path, after appending and seeing ``blocked``: step out,
        wait for the exclusive side to finish, step in again."""
        me = threading.get_ident()
        if self._owner == me:  # the exclusive holder calls the pipeline itself
            return
        self.holders.pop()
        with self._cond:
            try:
                self._cond.notify_all()  # an exclusive holder may be waiting for this one
                while self.blocked and self._owner != me:
                    self._cond.wait()
            finally:  # under the lock: no exclusive holder gets in between
                self.holders.append(None)

    def leave(self) -> None:
        self.holders.pop()
        if self.blocked:
            self.wake()

    def wake(self) -> None:
        """After a shared holder left while ``blocked``: the exclusive side may go."""
        with self._cond:
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
            self.blocked = True
            try:
                while self._writer or self.holders:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: let the requests go on
                self._writers_waiting -= 1
                self.blocked = self._writer or self._writers_waiting > 0
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer, self._owner = True, me  # ``blocked`` stays set
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._owner = False, None
                self.blocked = self._writers_waiting > 0
                self._cond.notify_all()
