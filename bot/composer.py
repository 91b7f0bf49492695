"""Composing messages, in this process or in a pool of worker processes.

Rendering and writing a message costs about a millisecond of CPU, as much as sending it; done on
the event loop's thread it would hold the SMTP connections back. A ``Draft`` is the plain data a
message is made from (the digest, the footer facts, the envelope), so it can be pickled to a
worker process, which renders it with its own ``Renderer`` (built once, when the worker starts)
and sends the ``Outgoing`` back.

``ComposePool.start`` returns None where process pools are unavailable; callers then compose in
their own process, as they do for small runs, where starting workers would cost more than it
saves.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bot.message import Envelope, Outgoing, build_message
from bot.models import Digest
from bot.render import EmailContext, Renderer

log = logging.getLogger(__name__)

PER_TASK = 8
"""Drafts sent to a worker at once: fewer round trips, and still a short wait for the first."""


@dataclass(frozen=True, slots=True)
class Draft:
    """Everything a message is made from, as plain (picklable) data."""

    digest: Digest
    ctx: EmailContext
    envelope: Envelope


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


def worker_count() -> int:
    """The CPUs this process may use (2 when unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


class ComposePool:
    """A pool of worker processes composing drafts; ``depth`` tasks keep every worker busy."""

    def __init__(self, executor: ProcessPoolExecutor, workers: int) -> None:
        self._executor = executor
        self.depth = 2 * workers + 2

    @classmethod
    def start(cls, templates_dir: Path) -> ComposePool | None:
        """Start the workers, or return None where process pools are unavailable.

        Workers come from a fork server (a clean process that has imported the renderer), not
        from a fork of this one, whose threads may hold locks at the moment of the fork.
        """
        workers = worker_count()
        try:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
            if "forkserver" in methods:
                context.set_forkserver_preload(["bot.composer"])
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

    def compose(self, drafts: Sequence[Draft]) -> asyncio.Future[list[Outgoing | str]]:
        """The messages (or errors) for ``drafts``, composed in a worker."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, _compose_all, list(drafts))

    async def close(self) -> None:
        """Stop the workers, dropping drafts not started yet."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
