"""Pacing for the delivery engine: rate limits, group commits, a suppression snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Generic, TypeVar

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Written = Callable[[T, Exception | None], None]
"""Told, after a write, which item it was and the error if the write failed."""


class RateLimiter:
    """At most ``per_second`` messages a second and ``per_hour`` in any hour; None = no limit."""

    def __init__(
        self,
        per_second: float | None = None,
        per_hour: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.per_second, self.per_hour = per_second, per_hour
        self._clock, self._sleep = clock, sleep
        self._next = 0.0  # earliest moment of the next message under the per-second limit
        self._hour: deque[float] = deque()  # send moments of the last hour
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return bool(self.per_second or self.per_hour)

    async def wait(self) -> None:
        """Return when one more message may go out, and count it."""
        if not self.active:
            return
        async with self._lock:
            delay = self._delay(self._clock())
            if delay > 0:
                await self._sleep(delay)
            now = self._clock()
            if self.per_second:
                self._next = max(now, self._next) + 1 / self.per_second
            if self.per_hour:
                self._hour.append(now)

    def _delay(self, now: float) -> float:
        delay = max(0.0, self._next - now) if self.per_second else 0.0
        if self.per_hour:
            while self._hour and self._hour[0] <= now - 3600:
                self._hour.popleft()
            if len(self._hour) >= self.per_hour:
                delay = max(delay, self._hour[0] + 3600 - now)
        return delay


class GroupCommit(Generic[T]):
    """Writes items in batches on a worker thread.

    While one batch is being written, new items gather for the next, so N concurrent writers
    cost about one transaction. ``await add(item)`` returns once the item is written;
    ``await submit(item, done)`` returns once it is queued and calls ``done(item, error)`` after
    the write, so the caller can go on meanwhile. At most ``max_unwritten`` items are ever
    queued or being written: ``submit`` waits for room.

    With ``linger``, a write of fewer than ``batch`` items waits up to ``linger`` seconds for
    more (a transaction and a thread hand-off cost far more than one more row), except while
    draining. ``abandon`` stops the writes and hands back the items not known to be written
    (those still waiting for room too), for a caller cancelled before they were.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], None],
        max_unwritten: int,
        *,
        batch: int = 1,
        linger: float = 0.0,
    ) -> None:
        self._write = write
        self._room = asyncio.Semaphore(max_unwritten)
        self._pending: list[tuple[T, Written[T]]] = []
        self._writing: list[tuple[T, Written[T]]] = []
        self._waiting: list[tuple[T, Written[T]]] = []
        """Items whose ``submit`` waits for room: handed in, but not queued yet."""
        self._abandoned = False
        self._task: asyncio.Task[None] | None = None
        self._batch, self._linger = batch, linger
        self._enough = asyncio.Event()  # set when a full batch is pending, or to drain
        self._draining = False

    async def add(self, item: T) -> None:
        """Queue ``item`` for the next batch and wait until that batch is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(_item: T, error: Exception | None) -> None:
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        await self.submit(item, settle)
        await done

    async def submit(self, item: T, done: Written[T]) -> None:
        """Queue ``item`` (once fewer than ``max_unwritten`` are unwritten); ``done`` follows.
        The item is handed in as the call starts: cancelled while it waits for room, or handed
        back by ``abandon`` meanwhile, it is never written, and ``abandon`` answers for it."""
        entry = (item, done)
        self._waiting.append(entry)
        await self._room.acquire()
        if self._abandoned:  # handed back while it waited
            return
        self._waiting = [waiting for waiting in self._waiting if waiting is not entry]
        self._pending.append(entry)
        if len(self._pending) >= self._batch:
            self._enough.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Return once every queued item is written (or failed)."""
        self._draining = True
        self._enough.set()
        while self._task is not None and not self._task.done():
            await self._task
        self._draining = False

    def abandon(self) -> list[T]:
        """Stop writing and return the items queued, being written or waiting for room, which
        the caller now answers for: none of their ``done`` is called, even for a write already
        under way (whose thread finishes it unseen)."""
        if self._task is not None:
            self._task.cancel()
        self._abandoned = True
        items = [item for item, _ in chain(self._writing, self._pending, self._waiting)]
        self._writing, self._pending, self._waiting = [], [], []
        return items

    async def _flush(self) -> None:
        while self._pending:
            if len(self._pending) < self._batch and not self._draining:
                self._enough.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger):
                        await self._enough.wait()
            batch, self._pending = self._pending, []
            self._writing = batch
            error: Exception | None = None
            try:
                await asyncio.to_thread(self._write, [item for item, _ in batch])
            except Exception as exc:  # every item of the batch learns it was not written
                error = exc
            self._writing = []
            for item, done in batch:
                self._room.release()
                done(item, error)


class Snapshot:
    """A set loaded on a worker thread, reloaded when older than ``max_age`` seconds."""

    def __init__(
        self,
        load: Callable[[], set[str]],
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self.max_age, self._clock = load, max_age, clock
        self._items: set[str] = set()
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def contains(self, item: str) -> bool:
        """Whether ``item`` is in the set as of at most ``max_age`` seconds ago."""
        async with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= self.max_age:
                self._items = await asyncio.to_thread(self._load)
                self._loaded_at = now
        return item in self._items
