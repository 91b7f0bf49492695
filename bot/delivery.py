"""The delivery engine: claim, compose, send and record many messages, each at most once.

One producer task claims jobs in batches (a worker thread does the SQL) and composes each
message; ``mailer.concurrency`` sender tasks take them from a short queue, re-check the
suppression list, send, and hand each accepted message to a group commit that records ``sent``
while they go on sending. So rendering, ledger writes and SMTP overlap and the slowest of them
sets the pace.

The crash bound: at most ``mailer.concurrency + UNRECORDED`` messages are in flight at any
moment (being sent, or accepted and not yet recorded), and only those can arrive twice after a
crash, with the same Message-ID: their rows are still ``sending`` and are sent again once their
lease runs out. Nothing is ever skipped.

How each failure is handled:

- temporary (4xx, 552): ``temp_failed`` with the next attempt from ``RetryPolicy``;
  past the give-up time, ``perm_failed``
- permanent (other 5xx): ``perm_failed``; the address is suppressed only when the server refused
  its mailbox (see ``bot.smtp``). Each refusal, of the mailbox or of the message (the
  content, a policy), is held until another outcome ends the row of messages refused with the
  same reply (code and enhanced status), and then recorded ``perm_failed`` (and the refused
  mailboxes suppressed). When ``REFUSALS_IN_ROW`` are refused in a row (refused mailboxes: of
  ``MAILBOX_DOMAINS`` domains or more; see ``bot.refusals``), stop: every message would be
  refused, the server is at fault and not the messages nor their addresses (a relay refusing
  every mailbox it does not serve); the held ones are released with the rest, so that a server
  refusing every message fails none of them and suppresses nobody. (A run of one message
  cannot tell: its refused mailbox is recorded, and the worker, sweep after sweep, undoes a row
  of them; see ``bot.worker``.)
- a connection that cannot be opened (refused, timed out, no greeting, EHLO or login refused
  for now), or one kept from an earlier message found closed before the server answered
  anything in the new transaction: open one and try again; after ``smtp_max_failures`` such
  failures in a row, stop
- connection lost (or timed out) during a message's transaction, before its data is complete:
  that message failed for now, like a 4xx; the others go on over a new connection
- connection lost after the data: the row stays ``sending``; its lease runs out and it is sent
  again, with the same Message-ID: at once after a first attempt (as after a crash), after the
  backoff of ``RetryPolicy`` after a later one. Once it has had as many attempts as the backoff
  makes before it gives up, it is ``perm_failed`` instead
- the connection lost during ``smtp_max_failures`` messages in a row (before or after their
  data): stop, the server drops every message
- authentication or TLS failure, or an SMTP host name that does not exist: stop at once
- any other error (the database went away, a bug): nothing more is sent and the run ends with
  it; the claimed messages no sender handed to the server are released (see below), and those
  in flight stay ``sending`` until their lease runs out, like after a crash. When the database
  refuses to release them, they stay ``sending`` too, and the ledger keeps them for this
  process to give back once it works again (``Ledger.owe``: the worker's next sweep does, a
  command tries before it exits)
- a ``sent`` that cannot be recorded: the message is reported ``unknown`` (its row stays
  ``sending``, as above, and the ledger keeps it to record ``sent`` once the database works
  again) and the run stops, so that no more messages go out unrecorded
Stopping (or ``deps.stop``) releases the claimed messages not yet sent, for the next run: each
row becomes ``temp_failed``, due at once, with ``not sent: <why the run stopped>``, and the claim
does not count as an attempt (the server never had a word about that message), and the message
in hand when the run stopped is given back with them (``released`` counts it: it did not fail,
the next run sends it); the report's ``stopped_by`` is the SMTP error that stopped the run, if
one did. The jobs not claimed yet are left as they are (the next run delivers them):
``unclaimed`` counts those the run had taken. A cancelled run (a stop
that would not wait longer) records the messages accepted but not yet recorded as ``sent`` (and
reports them) and releases the rest too, as soon as the cancellation reaches it and without
awaiting anything; the messages being sent then stay ``sending``, as after a crash.
``deps.on_outcome`` hears of each outcome and ``deps.on_released`` of each release as they come,
so that a run cancelled before it returns its report is known by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from itertools import chain, islice
from typing import TypeVar

from bot.collector import quiet_collector
from bot.composer import PER_TASK, ComposePool, Draft, start_fork_server
from bot.delivery_jobs import (
    Composing,
    DeliveryDeps,
    DeliveryOptions,
    DeliveryReport,
    Job,
    Outcome,
    Ready,
    chunks,
    retry_policy,
)
from bot.errors import (
    ConnectionDeliveryError,
    DeliveryError,
    DroppedDeliveryError,
    FatalDeliveryError,
    PermanentDeliveryError,
    RecipientDeliveryError,
    TemporaryDeliveryError,
    UnknownOutcomeError,
)
from bot.mailer import Mailer
from bot.message import Outgoing, new_message_id
from bot.pacing import GroupCommit, RateLimiter, Snapshot
from bot.refusals import REFUSALS_IN_ROW, blames_server
from bot.store import OUTCOME_UNKNOWN, Claim, ClaimRequest, DatabaseFailure, db_reason
from bot.text import plural

__all__ = ["DeliveryOptions", "Job", "deliver", "prepare"]

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 64  # claims per transaction
POOL_MIN = 50
"""Fewer jobs than this are composed in this process: starting workers would cost more."""
UNRECORDED = 64
"""Most accepted messages whose ``sent`` is not committed yet; a sender waits for room."""
RECORD_LINGER = 0.05
"""Seconds a ``sent`` record may wait for others to share its transaction (up to half of
``UNRECORDED``): one transaction for a few messages costs far more than one for many."""
TAKEN_OVER = "taken over from an interrupted run"
"""How a message left ``sending`` by a run that died is said to be sent again (as it was)."""
RESEND_FAILED = "not sent again: the digest sent before stands"
"""What a resend of a sent digest that did not go adds to its outcome: nothing retries it."""
_ONCE_BACK = "once the database works again: a worker at its next sweep, a command before it exits"
"""When this process writes the claims the database refused to settle (``Ledger.owe``), as the
log says it."""


def forced_note(resent: bool) -> str:
    """What the outcome of a digest sent by ``--force`` adds: ``forced resend`` when it had been
    sent (the subscriber gets it a second time), else ``forced``."""
    return " (forced resend)" if resent else " (forced)"


_Held = tuple[Job, Claim, DeliveryError]
"""A refused message not recorded yet, and its refusal."""


def prepare(jobs: int) -> None:
    """Say that about ``jobs`` jobs will soon be delivered: when that many will be composed in
    worker processes, what starts the workers starts now, while the caller is still busy."""
    if jobs >= POOL_MIN:
        start_fork_server()


async def deliver(
    deps: DeliveryDeps, jobs: Iterable[Job], options: DeliveryOptions | None = None
) -> DeliveryReport:
    """Deliver every job at most once; see the module docstring for what each failure does."""
    if deps.mailer is None:
        raise ValueError("deliver needs a mailer")
    with quiet_collector():
        return await _Run(deps, deps.mailer, options or DeliveryOptions()).run(jobs)


class _Run:
    """The state of one delivery run."""

    def __init__(self, deps: DeliveryDeps, mailer: Mailer, options: DeliveryOptions) -> None:
        self.deps, self.mailer, self.options = deps, mailer, options
        settings, ledger = deps.settings, deps.store.ledger
        self.policy = retry_policy(settings)
        self.lease = timedelta(seconds=settings.send_lease_seconds)
        self.limiter = RateLimiter(settings.smtp_rate_per_second, settings.smtp_rate_per_hour)
        self.queue: asyncio.Queue[Ready | None] = asyncio.Queue(maxsize=2 * mailer.concurrency)
        self.recorder: GroupCommit[tuple[Job, Claim]] = GroupCommit(
            lambda items: ledger.mark_sent_many([claim for _, claim in items], deps.clock()),
            max_unwritten=UNRECORDED, batch=UNRECORDED // 2, linger=RECORD_LINGER,
        )  # fmt: skip
        self.suppressed = Snapshot(deps.store.suppressed_emails)
        self.report = DeliveryReport()
        self.most_attempts = self.policy.most_attempts()
        self.failures_in_row = 0
        """Connections in a row that could not be opened."""
        self.lost_in_row = 0
        """Messages in a row whose connection was lost during their transaction."""
        self.refusal: tuple[int, str | None] | None = None
        self.settled = 0
        """Messages the server gave an outcome in this run (see ``_in_a_row``)."""
        self.held: list[_Held] = []
        """The messages in a row refused with ``refusal`` (a code and enhanced status), recorded
        once another outcome ends the row, or released if the run stops."""
        self.broken: Exception | None = None
        """What failed unexpectedly (the database went away): nothing more is sent, and the run
        ends with it."""
        self.unsent: dict[int, Claim] = {}
        """Claimed rows not handed to the server yet, nor settled: what a broken run releases."""
        self.stopping = asyncio.Event()
        """Set when the run stops: senders waiting to open a connection again wake up."""
        self.releasing = threading.Lock()
        """Held while claims are released (on a worker thread, or at a cancellation)."""

    async def run(self, jobs: Iterable[Job]) -> DeliveryReport:
        senders = [asyncio.create_task(self._sender()) for _ in range(self.mailer.concurrency)]
        try:
            try:
                await self._produce(jobs)
            except Exception as exc:  # claiming failed (the database went away): send no more
                self.broken = self.broken or exc
            await self._finish(senders)
        except asyncio.CancelledError:
            self._abandon(senders)
            raise
        if self.broken is not None:
            raise self.broken
        return self.report

    async def _finish(self, senders: list[asyncio.Task[None]]) -> None:
        """Let the senders empty the queue and wait for the ``sent`` records; then record the
        refusals held, or, when the run stopped or broke, release them with the claims not
        sent."""
        for _ in senders:
            await self.queue.put(None)
        await asyncio.gather(*senders)
        await self.recorder.drain()
        if not (self.unsent or self.held):
            return
        if self.broken is None and not self._halted():
            # Every message of the run refused the same way, and no other outcome: that may be
            # the server's doing, so they are tried again later (but refused mailboxes of fewer
            # domains are dead addresses, recorded as usual)
            everything = len(self.held) == self.settled and self._server_at_fault(whole=True)
            if everything:
                self.report.refused_all = self.held[0][2]
            for job, claim, refusal in self._end_refusals():
                await self._failed(job, claim, for_now(refusal) if everything else refusal)
        else:
            await asyncio.to_thread(self._release_all, self.deps.clock(), self._not_sent())

    def _abandon(self, senders: list[asyncio.Task[None]]) -> None:
        """The run is cancelled: stop the senders, record (and report) the messages accepted but
        not yet recorded, and release the claims none of them handed to the server, before the
        cancellation goes on (without waiting: the task may be cancelled again). The messages
        in flight stay ``sending`` until their lease runs out."""
        for sender in senders:
            sender.cancel()
        if not self._halted() and self.broken is None:
            self.report.stopped = "the run was cancelled"
        now = self.deps.clock()
        accepted = self.recorder.abandon()
        ledger = self.deps.store.ledger
        try:
            ledger.mark_sent_many([claim for _, claim in accepted], now)
        except Exception as exc:
            ledger.owe([claim for _, claim in accepted], None)
            log.warning(
                "left 'sending': %s; recording them failed: %s (this process records them %s; "
                "otherwise they are sent again as after a crash)",
                plural(len(accepted), "sent message"), db_reason(exc), _ONCE_BACK,
            )  # fmt: skip
        else:
            for item in accepted:
                self._recorded(item, None)
        if released := self._release_all(now, self._not_sent()):
            unsent = plural(released, "claimed message")
            log.warning("delivery cancelled: released %s not sent", unsent)

    def _release_all(self, now: datetime, reason: str) -> int:
        """Give back every claim not settled, saying why, for the next run: the messages no
        sender handed to the server and the refusals held; how many (``report.released``
        counts them). When the database refuses that, the rest stay ``sending`` until their
        lease runs out, and the run ends with that error unless it ends with another.
        ``deps.on_released`` hears how many (with the lock held, on the caller's thread)."""
        ledger, released = self.deps.store.ledger, 0
        with self.releasing:
            self.unsent.update((claim.delivery_id, claim) for _, claim, _ in self.held)
            self.held.clear()
            while self.unsent:
                _, claim = self.unsent.popitem()
                try:
                    released += ledger.release(claim, now, reason)
                except Exception as exc:
                    left = [claim, *self.unsent.values()]
                    self.unsent.clear()
                    ledger.owe(left, reason)
                    log.warning(
                        "left 'sending': %s; releasing them failed: %s (this process gives them "
                        "back %s; otherwise they are sent again as after a crash)",
                        plural(len(left), "claimed message"), db_reason(exc), _ONCE_BACK,
                    )  # fmt: skip
                    self.broken = self.broken or exc
                    break
            self.report.released += released
            if released:
                self.deps.on_released(released)
        return released

    # -- bookkeeping -------------------------------------------------------------------------

    def _emit(
        self,
        job: Job,
        status: str,
        detail: str,
        papers: int = 0,
        *,
        resent: bool = False,
        code: int | None = None,
        refused: tuple[int, str | None] | None = None,
    ) -> None:
        outcome = Outcome(
            job.email, status, papers, detail, job.day, job.kind, job.ref, resent, code, refused
        )
        self.report.outcomes.append(outcome)
        self.deps.on_outcome(outcome)

    def _halted(self) -> bool:
        if self.report.stopped is None and self.deps.stop.is_set():
            self.report.stopped = "shutting down"
        return self.report.stopped is not None

    def _halt(self, reason: str, cause: DeliveryError | None = None) -> None:
        if self.report.stopped is None:
            log.error("delivery stopped: %s", reason)
            self.report.stopped, self.report.stopped_by = reason, cause
            self.stopping.set()

    # -- producer ----------------------------------------------------------------------------

    async def _produce(self, jobs: Iterable[Job]) -> None:
        it = iter(jobs)
        first = list(islice(it, POOL_MIN))
        pool, warming = None, None
        if len(first) == POOL_MIN and all(job.draft is not None for job in first):
            pool = await asyncio.to_thread(ComposePool.start, self.deps.renderer.templates_dir)
            if pool is not None:  # started in the background: compose here meanwhile
                warming = asyncio.create_task(asyncio.to_thread(pool.warm_up))
        head = iter(first)  # what claiming did not reach of it counts as unclaimed, as a chunk
        try:
            await self._claim_and_compose(chain(head, it), pool)
            self.report.unclaimed += sum(1 for _ in head)
        finally:
            if pool is not None and warming is not None:
                await warming
                await pool.close()

    async def _claim_and_compose(self, jobs: Iterable[Job], pool: ComposePool | None) -> None:
        """Claim in batches; compose here (also while the workers start), or in ``pool`` with
        a few tasks always queued."""
        size = 1 if self.limiter.active else BATCH
        inflight: deque[Composing] = deque()
        async with contextlib.aclosing(chunks(jobs, size)) as batches:
            async for chunk in batches:
                if self._halted() or self.broken is not None:
                    self.report.unclaimed += len(chunk)
                    break
                await self.limiter.wait()
                claimed = await self._claim(chunk)
                drafts: list[tuple[Job, Claim, Draft]] = []
                for job, claim in claimed:
                    if pool is None or job.draft is None or not pool.ready:
                        await self._compose_here(job, claim)
                    elif (draft := await self._attempt(job, claim, job.draft)) is not None:
                        drafts.append((job, claim, draft))
                if drafts:
                    assert pool is not None  # drafts are only made for the pool
                    await self._to_workers(drafts, pool, inflight)
        while inflight:
            await self._hand_over(inflight.popleft())

    async def _to_workers(
        self, drafts: list[tuple[Job, Claim, Draft]], pool: ComposePool, inflight: deque[Composing]
    ) -> None:
        """Hand ``drafts`` to the workers, ``PER_TASK`` at a time, keeping ``pool.depth`` tasks
        queued; if the workers are gone, compose them here."""
        for start in range(0, len(drafts), PER_TASK):
            part = drafts[start : start + PER_TASK]
            while len(inflight) >= pool.depth:
                await self._hand_over(inflight.popleft())
            composing = pool.compose([d for _, _, d in part])
            if composing is not None:
                inflight.append(Composing(part, composing))
                continue
            for job, claim, _ in part:
                await self._compose_here(job, claim)

    async def _claim(self, chunk: list[Job]) -> list[tuple[Job, Claim]]:
        """Claim the chunk's rows in one transaction; report the jobs already taken care of."""
        requests = [
            ClaimRequest(j.subscriber_id, j.day, j.paper_ids, self._message_id(), j.kind, j.ref)
            for j in chunk
        ]
        claims = await asyncio.to_thread(
            self.deps.store.ledger.claim_many, requests, self.deps.clock(),
            retry_now=self.options.retry_now, force=self.options.force, lease=self.lease,
        )  # fmt: skip
        results = list(zip(chunk, claims, strict=True))
        claimed = [(job, claim) for job, claim in results if claim is not None]
        self.unsent.update((claim.delivery_id, claim) for _, claim in claimed)
        for job, claim in results:
            if claim is None:  # asking why reads the database, which may fail: claims first
                self._emit(job, "already", await self._why_not(job))
        return [(job, claim) for job, claim in claimed if not await self._given_up(job, claim)]

    async def _given_up(self, job: Job, claim: Claim) -> bool:
        """Whether ``claim`` resumes a message whose outcome stayed unknown (the connection was
        lost after its data, or its sender died) after as many attempts as the backoff makes:
        it is then recorded ``perm_failed`` instead of being sent again."""
        tried = claim.attempts - 1
        if not claim.resumed or tried < self.most_attempts:
            return False
        detail = f"{OUTCOME_UNKNOWN} after {tried} attempts"
        ledger, now = self.deps.store.ledger, self.deps.clock()
        await asyncio.to_thread(
            ledger.mark_failed, claim, now, error=detail, retry_at=None, attempted=False
        )
        self.unsent.pop(claim.delivery_id, None)
        self._emit(job, "failed", detail, len(claim.paper_ids))
        return True

    async def _hand_over(self, composing: Composing) -> None:
        """Queue the composed messages for the senders (when stopping, the run releases them
        as it ends)."""
        if self._halted():
            composing.future.cancel()
            return
        try:
            results: list[Outgoing | str | None] = list(await composing.future)
        except BrokenProcessPool:  # a worker died: compose these here
            results = [await self._attempt(j, c, j.compose) for j, c, _ in composing.part]
        for (job, claim, _), result in zip(composing.part, results, strict=True):
            if isinstance(result, str):
                log.error("composing the %s for %s failed: %s", job.kind, job.email, result)
                await self._failed(job, claim, TemporaryDeliveryError(result))
                continue
            await self._ready(job, claim, result)

    async def _ready(self, job: Job, claim: Claim, message: Outgoing | None) -> None:
        if message is not None:
            await self.queue.put(Ready(job, claim, message))

    async def _compose_here(self, job: Job, claim: Claim) -> None:
        """Compose in this process and queue the message (a failure is recorded)."""
        await self._ready(job, claim, await self._attempt(job, claim, job.compose))

    def _not_sent(self) -> str:
        """What a claim given back unsent says."""
        return f"not sent: {self._why_stopped()}"

    def _why_stopped(self) -> str:
        """Why claimed messages are given back: what stopped the run, or the error it ends with."""
        if self.report.stopped is not None:
            return self.report.stopped
        error = self.broken
        if isinstance(error, DatabaseFailure):
            return f"the run ended with a database error: {db_reason(error)}"
        return f"the run ended with an internal error: {error!r}"

    def _message_id(self) -> str:
        return new_message_id(self.deps.settings.sender)

    async def _why_not(self, job: Job) -> str:
        ledger = self.deps.store.ledger
        row = await asyncio.to_thread(ledger.get, job.subscriber_id, job.day, job.kind, job.ref)
        return row.meaning() if row is not None else "claimed elsewhere"

    async def _attempt(self, job: Job, claim: Claim, make: Callable[[Claim], T]) -> T | None:
        """``make(claim)`` (the message, or its draft); a failure is recorded and gives None."""
        try:
            return make(claim)
        except PermanentDeliveryError as exc:  # it can never be written: not tried again
            log.error("the %s for %s cannot be written: %s", job.kind, job.email, exc)
            await self._failed(job, claim, exc)
            return None
        except Exception as exc:  # a bug rendering one message must not stop the others
            log.exception("composing the %s for %s failed", job.kind, job.email)
            await self._failed(job, claim, TemporaryDeliveryError(f"internal error: {exc!r}"))
            return None

    # -- senders -----------------------------------------------------------------------------

    async def _sender(self) -> None:
        """Send what is queued. After an unexpected failure the run is broken: the senders only
        empty the queue (so the producer never waits on it), and the run releases those rows
        as it ends."""
        while (item := await self.queue.get()) is not None:
            if self.broken is not None:
                continue
            try:
                if self._halted():  # the run releases it as it ends
                    continue
                await self._deliver(item)
            except Exception as exc:
                self.broken = exc

    async def _deliver(self, item: Ready) -> None:
        job, claim = item.job, item.claim
        ledger = self.deps.store.ledger
        if await self.suppressed.contains(job.email.lower()):
            await asyncio.to_thread(ledger.mark_skipped, claim, self.deps.clock(), "suppressed")
            self.unsent.pop(claim.delivery_id, None)
            self._emit(job, "skipped", "address is suppressed")
            return
        self.unsent.pop(claim.delivery_id, None)  # in the server's hands from here on
        try:
            await self._send(item.message)
        except FatalDeliveryError as exc:  # the server never had it: given back with the rest
            self._halt(str(exc), exc)
            self.unsent[claim.delivery_id] = claim
        except DeliveryError as exc:
            await self._settle(job, claim, exc)
        else:
            await self._settle(job, claim, None)

    async def _send(self, message: Outgoing) -> None:
        """Send, opening the connection again when it could not be opened, until that failed
        too often in a row."""
        while True:
            try:
                await self.mailer.send(message)
            except ConnectionDeliveryError as exc:
                self._connection_failed(exc)
                if self._halted():
                    raise FatalDeliveryError(self.report.stopped or str(exc)) from exc
                await self._nap(min(0.05 * 2**self.failures_in_row, 5.0))
                if self._halted():  # stopped meanwhile: no more connections
                    raise FatalDeliveryError(self.report.stopped or str(exc)) from exc
                continue
            except (PermanentDeliveryError, TemporaryDeliveryError, UnknownOutcomeError):
                self.failures_in_row = 0  # the connection opened: the server can be reached
                raise
            self.failures_in_row = 0
            return

    async def _nap(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the run stops or the process shuts down meanwhile."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.stopping, self.deps.stop)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _settle(self, job: Job, claim: Claim, error: DeliveryError | None) -> None:
        """Record what became of a message the server had: accepted (``error`` is None),
        refused, failed for now or of unknown outcome. A permanent refusal is held instead
        (see ``_in_a_row``)."""
        for held in self._in_a_row(job, claim, error):
            await self._failed(*held)
        if error is None:
            await self._sent(job, claim)
        elif isinstance(error, UnknownOutcomeError):
            await self._unknown(job, claim, error)
        elif held_refusal(error) is None:
            await self._failed(job, claim, error)

    def _connection_failed(self, exc: DeliveryError) -> None:
        self.failures_in_row += 1
        limit = self.deps.settings.smtp_max_failures
        if self.failures_in_row >= limit:
            failures = plural(self.failures_in_row, "connection failure")
            self._halt(f"{failures} in a row, last: {exc}", exc)

    def _in_a_row(self, job: Job, claim: Claim, error: DeliveryError | None) -> list[_Held]:
        """Count what happened to one more message (``error``, or None once it was accepted),
        and stop when messages in a row keep failing in a way every message would: the
        connection lost during ``smtp_max_failures`` of them, or ``REFUSALS_IN_ROW`` refused
        with the same reply.

        Such a refusal is held, not recorded: until the row ends, nobody knows whether the
        server refuses this message (or its mailbox) or every one. A refused mailbox is held
        too, although it blames the address: a relay that serves other domains only refuses
        every mailbox the same way, and recording each would suppress the whole list. The held
        refusals of a row this outcome ended are returned, to be recorded ``perm_failed``."""
        self.settled += 1
        lost = isinstance(error, DroppedDeliveryError | UnknownOutcomeError)
        self.lost_in_row = self.lost_in_row + 1 if lost else 0
        refusal = held_refusal(error)
        same = refusal is not None and refusal == self.refusal
        ended = [] if same else self._end_refusals()
        self.refusal = refusal
        if refusal is not None and error is not None:
            self.held.append((job, claim, error))
        if self.lost_in_row >= self.deps.settings.smtp_max_failures:
            self._halt(
                f"the connection was lost during {self.lost_in_row} messages in a row, "
                f"last: {error}", error,
            )  # fmt: skip
        elif len(self.held) >= REFUSALS_IN_ROW and self._server_at_fault():
            n = len(self.held)
            self._halt(f"{n} messages in a row refused the same way, last: {error}", error)
        return ended

    def _server_at_fault(self, whole: bool = False) -> bool:
        """Whether the refusals held (the ``whole`` run's) may be the server's doing rather
        than each message's: a refused message always may; refused mailboxes as
        ``blames_server`` says."""
        if not isinstance(self.held[0][2], RecipientDeliveryError):
            return True
        refused = [job.email for job, _, _ in self.held]
        return blames_server(refused, self.options.domains, whole=whole)

    def _end_refusals(self) -> list[_Held]:
        """Take the held refusals, to be recorded; none once the run is stopping: it releases
        them with the claims not sent."""
        if self._halted():
            return []
        ended, self.held = self.held, []
        return ended

    async def _unknown(self, job: Job, claim: Claim, exc: UnknownOutcomeError) -> None:
        """The message may have arrived: its row stays ``sending``, to be sent again with the
        same Message-ID once its lease runs out: at once after a first attempt (as after a crash),
        after the backoff for its attempts after a later one. A forced resend of a sent digest
        is not sent again: the row stays ``sent`` (see ``Ledger._finish``)."""
        now, wait = self.deps.clock(), self.lease
        if claim.attempts > 1:
            wait = max(wait, self.policy.delay(claim.attempts, self.options.rand))
        await asyncio.to_thread(
            self.deps.store.ledger.mark_unknown, claim, now, error=str(exc), until=now + wait
        )
        again = (
            RESEND_FAILED if claim.sent_before else "it will be sent again with the same Message-ID"
        )
        self._emit(job, "unknown", f"{exc}; {again}")

    async def _sent(self, job: Job, claim: Claim) -> None:
        """Hand the accepted message to the group commit; it is reported once recorded."""
        await self.recorder.submit((job, claim), self._recorded)

    def _recorded(self, item: tuple[Job, Claim], error: Exception | None) -> None:
        job, claim = item
        if error is not None:  # sending on would only add messages the ledger cannot record
            self.deps.store.ledger.owe([claim], None)  # recorded once the database works
            why = db_reason(error)
            self._halt(f"the ledger could not record sent messages: {why}")
            self._emit(job, "unknown", f"sent, but the ledger could not record it: {why}")
            return
        n = len(claim.paper_ids)
        note = f" ({TAKEN_OVER})" if claim.resumed else ""
        note = forced_note(claim.resent) if claim.forced else note
        papers = plural(n, "paper") if n else "nothing matched"
        papers = papers if job.kind == "digest" else job.kind
        self._emit(job, "sent", f"{papers}{note}", n, resent=claim.resent)

    async def _failed(self, job: Job, claim: Claim, exc: DeliveryError) -> None:
        now, ledger, store = self.deps.clock(), self.deps.store.ledger, self.deps.store
        detail, refused = str(exc), None
        if isinstance(exc, PermanentDeliveryError):
            retry_at = None
            if isinstance(exc, RecipientDeliveryError):
                reason = f"permanent failure: {exc}"
                await asyncio.to_thread(store.suppress, job.email, reason, now)
                detail, refused = f"{exc} (address suppressed)", held_refusal(exc)
        else:
            first = claim.first_attempt or now
            retry_at = self.policy.next_attempt(claim.attempts, first, now, self.options.rand)
            if retry_at is None:
                detail = f"gave up after {claim.attempts} attempts: {exc}"
        await asyncio.to_thread(
            ledger.mark_failed, claim, now, error=detail, code=exc.code, retry_at=retry_at
        )
        detail += f" ({RESEND_FAILED})" if claim.sent_before else ""  # the ledger keeps it sent
        self.unsent.pop(claim.delivery_id, None)  # gone already if the server refused it
        self._emit(job, "failed", detail, len(claim.paper_ids), code=exc.code, refused=refused)


def for_now(refusal: DeliveryError) -> TemporaryDeliveryError:
    """A refusal too few messages shared to tell whether the server refuses every message (a
    small run it refused all of): a temporary failure, retried with backoff and given up in
    time, rather than a permanent one."""
    why = f"{refusal}; every message of the run was refused so: tried again later"
    return TemporaryDeliveryError(why, refusal.code, refusal.status)


def held_refusal(error: DeliveryError | None) -> tuple[int, str | None] | None:
    """The reply code and enhanced status of a server's permanent refusal, of the message (the
    content, a policy) or of the recipient's mailbox, or None for any other outcome (also for a
    refusal the server never made: an address no SMTP command can carry)."""
    if not isinstance(error, PermanentDeliveryError):
        return None
    return None if error.code is None else (error.code, error.status)
