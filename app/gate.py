"""Admission to the model work: a few requests run at once, a bounded number wait, the rest are
told at once that the app is busy and how many requests are ahead.

Gradio's own queue would hold a request silently until a worker is free and, at its bound,
answer with a fixed "Queue is full" that names no figure. So the app's events are dispatched
by Gradio at once and wait here instead (`RequestGate.slot`), on the event loop and without a
thread: a waiting request sees its place ("2 of 14 waiting") in its progress bar, a request
beyond the bound gets `BusyError` ("busy: 52 requests ahead of yours, about 40 s of work") at once.

Everything here runs on the server's event loop (one thread), so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

EWMA = 0.2  # weight of the newest request in the mean service time


class BusyError(Exception):
    """The waiting line is at its bound; the message says how many requests are ahead."""


class RequestGate:
    """At most `slots` requests hold a slot at once; at most `max_waiting` wait for one, in
    arrival order.

    Attributes:
        served: requests that held a slot and released it.
        refused: requests answered `BusyError`.
        mean_seconds: running mean of how long a request holds its slot.
    """

    def __init__(self, slots: int, max_waiting: int) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError(f"slots must be >= 1 and max_waiting >= 0, got {slots}, {max_waiting}")
        self.slots = slots
        self.max_waiting = max_waiting
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.served = 0
        self.refused = 0
        self.mean_seconds: float | None = None

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in self._waiters)

    def ahead(self) -> int:
        """Requests a newcomer would find ahead of it (running + waiting)."""
        return self.running + self.waiting

    def busy_message(self) -> str:
        n = self.ahead()
        eta = ""
        if self.mean_seconds is not None:
            eta = f", about {n * self.mean_seconds / self.slots:.0f} s of work"
        return (
            f"The app is busy: {n} requests are ahead of yours ({self.slots} run at a time, "
            f"{self.max_waiting} may wait{eta}). Please try again in a minute."
        )

    @contextlib.asynccontextmanager
    async def slot(self, on_wait: Callable[[int, int], None] | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body. Waits in line when all are taken, calling
        `on_wait(place, waiting)` (1 = next) when it joins and about every second; raises
        `BusyError` at once when the line is full. A request cancelled while waiting leaves the line
        (and hands on a slot it was given meanwhile)."""
        if self.running < self.slots and not self.waiting:
            self.running += 1
        else:
            await self._wait(on_wait)
        start = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - start
            m = self.mean_seconds
            self.mean_seconds = took if m is None else (1 - EWMA) * m + EWMA * took
            self.served += 1
            self._release()

    async def _wait(self, on_wait: Callable[[int, int], None] | None) -> None:
        if self.waiting >= self.max_waiting:
            self.refused += 1
            raise BusyError(self.busy_message())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            while True:
                if on_wait is not None:
                    live = [f for f in self._waiters if not f.done()]
                    if turn in live:
                        on_wait(live.index(turn) + 1, len(live))
                try:
                    await asyncio.wait_for(asyncio.shield(turn), timeout=1.0)
                    return  # the releasing request handed its slot on (running unchanged)
                except TimeoutError:
                    continue
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                turn.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(turn)

    def _release(self) -> None:
        """Hand the slot to the first live waiter, or free it."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1
