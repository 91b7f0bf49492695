"""Composing messages, in this process or in a pool of worker processes.

Rendering and writing a message costs about a millisecond of CPU, as much as sending it; done on
the event loop's thread it would hold the SMTP connections back. A ``Draft`` is the plain data a
message is made from (the digest, the footer facts, the envelope), so it can be pickled to a
worker process, which renders it with its own ``Renderer`` (built once, when the worker starts)
and sends the ``Outgoing`` back.

``ComposePool.start`` returns None where process pools are unavailable; callers then compose in
their own process, as they do for small runs, where starting workers would cost more than it
saves.

Drafts and messages cross between processes by the thousand. A slotted dataclass pickles its
fields through ``__getstate__``/``__setstate__`` written in Python; rebuilding it by calling the
class with its fields costs half as much, so that is how the classes they are made of pickle.
"""

from __future__ import annotations

import asyncio
import copyreg
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from bot.collector import quiet_for_good
from bot.message import Envelope, Outgoing, Unsubscribe, build_message
from bot.models import Digest, Match, Paper
from bot.render import EmailContext, Renderer

log = logging.getLogger(__name__)

PER_TASK = 32
"""Drafts sent to a worker at once: fewer round trips, and still a short wait for the first."""


@dataclass(frozen=True, slots=True)
class Draft:
    """Everything a message is made from, as plain (picklable) data."""

    digest: Digest
    ctx: EmailContext
    envelope: Envelope


def _by_fields(obj: Any) -> tuple[type[Any], tuple[object, ...]]:
    """How to rebuild a dataclass instance: its class, called with its fields in order."""
    return type(obj), tuple(getattr(obj, name) for name in _FIELDS[type(obj)])


_FIELDS = {
    cls: tuple(f.name for f in fields(cls))
    for cls in (Paper, Match, Digest, Envelope, Unsubscribe, Draft, Outgoing)
}
for _cls in _FIELDS:
    copyreg.pickle(_cls, _by_fields)


def compose_draft(renderer: Renderer, draft: Draft) -> Outgoing:
    """Render the digest and write the message the subscriber will receive."""
    rendered = renderer.render(draft.digest, draft.ctx)
    return build_message(draft.envelope, rendered.subject, rendered.text, rendered.html)


_renderer: Renderer | None = None  # the worker process's own, built by _start_worker


def _start_worker(templates_dir: Path, parent: int) -> None:
    """Build the worker's renderer; Ctrl-C is the parent's to handle, not the workers'."""
    global _renderer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_outlive_not, args=(parent,), daemon=True).start()
    _renderer = Renderer(templates_dir)
    quiet_for_good()


def _outlive_not(parent: int) -> None:
    """Exit once the process that started the pool is gone (killed, it cannot say so)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid now belongs to someone else's process
            os._exit(0)


def _compose_all(drafts: Sequence[Draft]) -> list[Outgoing | str]:
    """Each draft's message, or the error that kept it from being written."""
    assert _renderer is not None, "the worker was not initialised"
    out: list[Outgoing | str] = []
    for draft in drafts:
        try:
            out.append(compose_draft(_renderer, draft))
        except Exception as exc:  # one bad message must not lose the others
            out.append(f"internal error: {exc!r}")
    return out


def _context() -> multiprocessing.context.BaseContext:
    """The fork server's context where there is one (set to preload this module), else the
    platform's default."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_SPAWNING = threading.Lock()
"""Held while workers start: ``_main_left_alone`` changes the main module for the process."""


@contextmanager
def _main_left_alone() -> Iterator[None]:
    """While workers start, have them leave the main module alone.

    A new process runs the parent's main module again, so that functions defined there can be
    unpickled, unless the main module is a package's ``__main__``. Workers only run functions
    of this module; running the main module (the command line, with everything it imports)
    would cost each of them a second of CPU. So, while they start, the main module says it is
    such a ``__main__``.
    """
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    main.__spec__ = ModuleSpec("bot.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = spec


def start_fork_server() -> None:
    """Start the fork server now, so that its imports overlap with what the caller does before
    it needs workers; a no-op where there is no fork server."""
    try:
        if _context().get_start_method() == "forkserver":
            multiprocessing.forkserver.ensure_running()
    except (ImportError, NotImplementedError, OSError, ValueError) as exc:
        log.warning("could not start the fork server early (%s)", exc)


def _started() -> None:
    """The task that tells a worker is up."""


def worker_count() -> int:
    """The CPUs this process may use (2 when unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


class ComposePool:
    """A pool of worker processes composing drafts; ``depth`` tasks keep every worker busy."""

    def __init__(self, executor: ProcessPoolExecutor, workers: int) -> None:
        self._executor, self._workers = executor, workers
        self.depth = 2 * workers + 2
        self._started: list[Future[None]] | None = None
        self._broken = False  # a worker died: the executor takes no more tasks

    @classmethod
    def start(cls, templates_dir: Path) -> ComposePool | None:
        """Start the workers, or return None where process pools are unavailable.

        Workers come from a fork server (a clean process that has imported the renderer), not
        from a fork of this one, whose threads may hold locks at the moment of the fork; they
        do not run the main module again (see ``_main_left_alone``).
        """
        workers = worker_count()
        try:
            context = _context()
            executor = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(templates_dir, os.getpid()),
            )
        except (ImportError, NotImplementedError, OSError, ValueError) as exc:
            log.warning("composing in this process: no process pool (%s)", exc)
            return None
        return cls(executor, workers)

    def warm_up(self) -> None:
        """Start every worker now (blocking: call it off the event loop); see ``ready``.

        Starting the workers takes a few tenths of a second (the fork server imports the
        renderer; each worker builds its own), time the caller can use to compose in its own
        process. If the workers cannot be started, the pool never becomes ready.
        """
        try:
            with _SPAWNING, _main_left_alone():
                self._started = [self._executor.submit(_started) for _ in range(self._workers)]
        except (OSError, RuntimeError, EOFError) as exc:
            # RuntimeError: closed meanwhile; EOFError: the fork server ended while starting a
            # worker (a stop signal to the whole process group reaches it too)
            log.warning("composing in this process: the workers did not start (%s)", exc)

    @property
    def ready(self) -> bool:
        """Whether ``warm_up`` started the workers, each has run its first task, and none died."""
        return (
            not self._broken
            and self._started is not None
            and all(s.done() and not s.cancelled() and not s.exception() for s in self._started)
        )

    def compose(self, drafts: Sequence[Draft]) -> asyncio.Future[list[Outgoing | str]] | None:
        """The messages (or errors) for ``drafts``, composed in a worker; None once a worker
        has died (the pool then takes no more drafts: the caller composes them itself)."""
        loop = asyncio.get_running_loop()
        try:
            return loop.run_in_executor(self._executor, _compose_all, list(drafts))
        except BrokenProcessPool:
            self._broken = True
            return None

    async def close(self) -> None:
        """Stop the workers, dropping drafts not started yet."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
