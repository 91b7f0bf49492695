"""APScheduler wiring for ``paperbot run``: a few fixed jobs that call the worker, and signals.

Jobs have fixed ids, ``replace_existing``, ``coalesce`` and ``max_instances=1``, and a misfire grace
time that fits them (APScheduler's default of one second would drop a run the loop was late for).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.worker import Worker

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # how long a stop waits for the job in flight before cancelling it
UNWIND_SECONDS = 5.0  # how long it then waits for the cancelled job to give its rows back
STOP_LIMIT = 20.0
"""Seconds after a stop signal at which the process exits whatever it is doing: a call that
never returns (a database server that hangs) must not keep the worker from stopping."""


def _stoppable(name: str, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """``job`` as the scheduler runs it: cancelled by a stop, it ends with one log line rather
    than as a failed job with a traceback."""

    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.warning("%s job cancelled", name)

    return run


def build_scheduler(worker: Worker, sweep_seconds: int, sources: str) -> AsyncIOScheduler:
    """The scheduler with its jobs: sweep, fetch through the day, fetch after arXiv announces."""
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(UTC)
    sweep, fetch = _stoppable("sweep", worker.sweep_job), _stoppable("fetch", worker.fetch_job)
    scheduler.add_job(
        sweep, IntervalTrigger(seconds=sweep_seconds), id="sweep",
        replace_existing=True, misfire_grace_time=max(sweep_seconds, 30), next_run_time=now,
    )  # fmt: skip
    scheduler.add_job(
        fetch, CronTrigger(hour="*/2", minute=10, timezone=UTC), id="fetch",
        replace_existing=True, misfire_grace_time=3600,
    )  # fmt: skip
    if "arxiv:" in sources:
        announce = CronTrigger(
            day_of_week="sun-thu", hour=20, minute=30, timezone="America/New_York"
        )
        scheduler.add_job(
            fetch, announce, id="fetch-arxiv", replace_existing=True,
            misfire_grace_time=6 * 3600,
        )  # fmt: skip
    return scheduler


async def _drain(worker: Worker) -> None:
    """Wait for the job in flight; cancel it if it overruns (it gives back the messages it did
    not hand to the server; those it did resume on restart), and wait for it to end."""
    try:
        await asyncio.wait_for(worker.busy.acquire(), DRAIN_SECONDS)
        worker.busy.release()
    except TimeoutError:
        log.warning("job still running after %.0f s; cancelling it", DRAIN_SECONDS)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=UNWIND_SECONDS)


async def _fetch_first(worker: Worker, stop: asyncio.Event) -> bool:
    """Fetch before the first sweep, so that today's digests have papers; False when a stop
    came first: the fetch is then cancelled."""
    fetch = asyncio.ensure_future(worker.fetch_job())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not stop.is_set():
        fetch.result()
        return True
    log.info("stopping: cancelling the start-up fetch")
    fetch.cancel()
    await asyncio.wait({fetch})
    if not fetch.cancelled():
        fetch.result()  # an error while it ended is not hidden
    return False


_STOPS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def watch_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop``, even while a call blocks the loop.

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
        "such as a database server that does not answer?): exiting now"
    )
    limit = threading.Timer(STOP_LIMIT, _exit_now, (hung,))
    limit.daemon = True
    reader = threading.Thread(
        target=_on_signals, args=(read, loop, stop, limit), name="signals", daemon=True
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
    pipe: int, loop: asyncio.AbstractEventLoop, stop: asyncio.Event, limit: threading.Timer
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
                loop.call_soon_threadsafe(stop.set)


def _exit_now(why: str) -> None:
    """Exit without waiting for anything: the claimed messages wait out their lease, as after a
    crash. The line is written straight to stderr: a logging handler's lock may be held by the
    very call that does not return."""
    with contextlib.suppress(OSError):
        os.write(2, f"paperbot: {why}\n".encode())
    os._exit(1)


async def run_worker(worker: Worker, sweep_seconds: int, sources: str, target: str) -> None:
    """Run until SIGTERM or SIGINT, then stop taking work, drain, and return.

    ``target`` says where mail goes, for the start-up line.
    """
    stop = asyncio.Event()
    with watch_signals(asyncio.get_running_loop(), stop):
        await _run(worker, stop, sweep_seconds, sources, target)


async def _run(
    worker: Worker, stop: asyncio.Event, sweep_seconds: int, sources: str, target: str
) -> None:
    worker.start()
    no_papers = not worker.deps.store.has_papers_for(worker.deps.clock().date())
    if no_papers and not await _fetch_first(worker, stop):
        log.info("worker stopped")
        return
    scheduler = build_scheduler(worker, sweep_seconds, sources)
    scheduler.start()
    log.info("worker started: sweep every %d s, sources %s; %s", sweep_seconds, sources, target)
    if worker.deps.settings.unsubscribe_warning:
        log.warning("%s", worker.deps.settings.unsubscribe_warning)
    await stop.wait()
    log.info("stopping: no new work; finishing what is in flight")
    scheduler.pause()  # no job starts from now on
    worker.deps.stop.set()  # the job in flight sends no new message and releases the rest
    await _drain(worker)
    scheduler.shutdown(wait=False)  # after the drain: shutting down cancels running jobs
    log.info("worker stopped")
