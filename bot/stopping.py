"""Stop signals: SIGTERM and SIGINT stop a run gracefully, heard even while a call blocks.

``paperbot run`` and ``paperbot send`` both stop this way: the messages being sent finish and the
rest are given back for the next run. A process that has not stopped ``STOP_LIMIT`` seconds after
the signal, or that gets a second one, exits at once; what it had claimed is sent again by the
next run, as after a crash. Work that sends nothing (fetching the papers) does not wait for the
stop: ``unless_stopped`` cancels it as soon as the stop comes, and ``in_thread`` keeps a blocking
call of such work (reading a file) off the event loop, so that it can be cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

STOP_LIMIT = 20.0
"""Seconds after a stop signal at which the process exits whatever it is doing: a call that
never returns (a database server that hangs) must not keep the process from stopping."""

_STOPS = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


class Stopped(Exception):
    """A stop came before the work it guarded was done, and the work was cancelled."""


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event, what: str) -> T:
    """What ``work`` returns, unless ``stop`` is set first: then ``work`` (``what``, for the
    log) is cancelled and, once it has ended, Stopped is raised. An error it ends with meanwhile
    is raised instead: it is not hidden. ``work`` does not start when ``stop`` is set already.
    """
    if stop.is_set():
        work.close()
        raise Stopped(what)
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the caller is cancelled: so is its work
        task.cancel()
        raise
    finally:
        stopping.cancel()
    if not stop.is_set():
        return task.result()
    log.info("stopping: cancelling %s", what)
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.result()
    raise Stopped(what)


async def in_thread(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)`` in a daemon thread of its own, which is left behind when the
    caller is cancelled: a call that never returns (a read from a hung mount, or from a FIFO
    nobody writes) blocks neither the event loop nor the process's exit. (``asyncio.to_thread``
    would not do: ``asyncio.run`` waits for the threads of its executor before it returns.)"""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(call(*args, **kwargs))
            except BaseException as exc:  # handed to the caller, whatever it is
                done.set_exception(exc)

    threading.Thread(target=run, name=getattr(call, "__name__", "call"), daemon=True).start()
    return await asyncio.wrap_future(done)


@contextlib.contextmanager
def watch_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop`` (and call ``on_stop`` on the loop),
    even while a call blocks the loop.

    The handlers themselves do nothing: Python's C-level handler writes each signal's number to
    a pipe at once, whatever the main thread is doing, and a thread reading that pipe wakes the
    loop. A first stop signal also starts ``STOP_LIMIT``; a second one exits at once. After a
    stop signal the watch stays until the process exits (a thread stuck in a call must not keep
    it alive past the limit); a block left without one restores what it found.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)  # first: no signal lost
    handlers = {sig: signal.signal(sig, lambda *_: None) for sig in _STOPS}
    hung = (
        f"still running {STOP_LIMIT:.0f} s after the stop signal (a call that does not return, "
        "such as a server that does not answer?): exiting now"
    )
    limit = threading.Timer(STOP_LIMIT, _exit_now, (hung,))
    limit.daemon = True
    reader = threading.Thread(
        target=_on_signals, args=(read, loop, stop, on_stop, limit), name="signals", daemon=True
    )
    reader.start()
    try:
        yield
    finally:
        if not limit.is_alive():  # no stop signal came
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous)
            limit.cancel()
            os.close(write)  # the reader sees the end of the pipe
            reader.join(timeout=1)
            os.close(read)


def _on_signals(
    pipe: int,
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    on_stop: Callable[[], None] | None,
    limit: threading.Timer,
) -> None:
    """Read the signals' numbers: the first stop signal sets ``stop`` and starts ``limit``, a
    second exits at once; other signals (with handlers of their own) are not stops."""
    stops = 0
    while data := os.read(pipe, 64):
        stops += sum(1 for number in data if number in _STOPS)
        if stops >= 2:
            _exit_now("a second stop signal: exiting now")
        if stops == 1 and not limit.is_alive():
            limit.start()
            with contextlib.suppress(RuntimeError):  # the loop is closed: it has stopped
                loop.call_soon_threadsafe(_stopped, stop, on_stop)


def _stopped(stop: asyncio.Event, on_stop: Callable[[], None] | None) -> None:
    if on_stop is not None and not stop.is_set():
        on_stop()
    stop.set()


def _exit_now(why: str) -> None:
    """Exit without waiting for anything: the claimed messages wait out their lease, as after a
    crash. The line is written straight to stderr: a logging handler's lock may be held by the
    very call that does not return."""
    with contextlib.suppress(OSError):
        os.write(2, f"paperbot: {why}\n".encode())
    os._exit(1)
