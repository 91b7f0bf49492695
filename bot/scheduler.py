"""APScheduler wiring for ``paperbot run``: a few fixed jobs that call the worker, and its stop.

Jobs have fixed ids, ``replace_existing``, ``coalesce`` and ``max_instances=1``, and a misfire grace
time that fits them (APScheduler's default of one second would drop a run the loop was late for).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.stopping import watch_signals
from bot.worker import Worker

log = logging.getLogger(__name__)

DRAIN_SECONDS = 8.0  # how long a stop waits for the job in flight before cancelling it
UNWIND_SECONDS = 5.0  # how long it then waits for the cancelled job to give its rows back
HEAD_START = timedelta(seconds=10)
"""How long the first sweep waits for a fetch at start-up before going on without it: sources
that answer at once bring today's papers before it, slow ones do not hold up the alerts and
retries (the due digests wait for the fetch: see ``Worker.listing``)."""


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


def build_scheduler(
    worker: Worker, sweep_seconds: int, sources: str, *, fetch_first: bool = False
) -> AsyncIOScheduler:
    """The scheduler with its jobs: sweep, fetch through the day, fetch after arXiv announces;
    with ``fetch_first``, a fetch at once too, and a sweep as soon as it ends. While the due
    digests wait for that fetch (``Worker.listing``), the first sweep gives it ``HEAD_START``."""
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(UTC)
    sweep, fetch = _stoppable("sweep", worker.sweep_job), _stoppable("fetch", worker.fetch_job)
    scheduler.add_job(
        sweep, IntervalTrigger(seconds=sweep_seconds), id="sweep", replace_existing=True,
        misfire_grace_time=max(sweep_seconds, 30),
        next_run_time=now + HEAD_START if fetch_first and worker.listing else now,
    )  # fmt: skip
    if fetch_first:

        async def fetch_then_sweep() -> None:
            await fetch()
            if not worker.deps.stop.is_set():  # the digests that waited for it go out now,
                await sweep()  # after the sweep in flight if one is (``Worker.busy``)

        scheduler.add_job(
            fetch_then_sweep, "date", run_date=now, id="fetch-start", replace_existing=True,
            misfire_grace_time=3600,
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
    """Wait for the jobs in flight (a fetch ends at once: see ``Worker.fetch_job``); cancel
    them if they overrun (a sweep gives back the messages it did not hand to the server; those
    it did resume on restart), and wait for them to end."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            for lock in (worker.fetching, worker.busy):
                async with lock:
                    pass
    except TimeoutError:
        log.warning("job still running after %.0f s; cancelling it", DRAIN_SECONDS)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=UNWIND_SECONDS)


async def run_worker(worker: Worker, sweep_seconds: int, sources: str, target: str) -> None:
    """Run until SIGTERM or SIGINT, then stop taking work, drain, and return.

    ``target`` says where mail goes, for the start-up line.
    """
    stop = asyncio.Event()
    with watch_signals(asyncio.get_running_loop(), stop):
        await run_until(worker, stop, sweep_seconds, sources, target)


async def run_until(
    worker: Worker, stop: asyncio.Event, sweep_seconds: int, sources: str, target: str
) -> None:
    """Start the worker and its jobs, run until ``stop`` is set, then stop taking work, drain,
    and return."""
    worker.start()
    # Said before anything is fetched: with the sources down a fetch takes a while, and the
    # operator should not have to wait for it to learn what the worker is doing.
    log.info("worker started: sweep every %d s, sources %s; %s", sweep_seconds, sources, target)
    for warning in worker.deps.settings.warnings:
        log.warning("%s", warning)
    today = worker.deps.clock().date()
    why = None
    if not worker.deps.store.has_papers_for(today):  # today's digests wait for today's list
        why = f"no papers stored for {today} yet"
        worker.listing = True
        log.info("%s: fetching the lists; due digests wait for them (alerts and retries do not)",
                 why)  # fmt: skip
    elif worker.sources_down:  # as the last fetch before this start left it
        why = "every source failed the last fetch"
        log.info("%s: fetching the lists again; due digests with nothing new wait for papers", why)
    scheduler = build_scheduler(worker, sweep_seconds, sources, fetch_first=why is not None)
    scheduler.start()
    await stop.wait()
    log.info("stopping: no new work; finishing what is in flight")
    scheduler.pause()  # no job starts from now on
    worker.deps.stop.set()  # the job in flight sends no new message and releases the rest
    await _drain(worker)
    scheduler.shutdown(wait=False)  # after the drain: shutting down cancels running jobs
    log.info("worker stopped")
