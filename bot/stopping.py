"""Stop signals: SIGTERM and SIGINT stop a run gracefully, heard even while a call blocks.

``paperbot run`` and ``paperbot send`` both stop this way: the messages being sent finish and the
rest are given back for the next run. A process that has not stopped ``STOP_LIMIT`` seconds after
the signal, or that gets a second one, exits at once; what it had claimed is sent again after the
lease, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

STOP_LIMIT = 20.0
"""Seconds after a stop signal at which the process exits whatever it is doing: a call that
never returns (a database server that hangs) must not keep the process from stopping."""

_STOPS = (signal.SIGTERM, signal.SIGINT)


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
