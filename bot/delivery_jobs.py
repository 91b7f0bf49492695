"""What the delivery engine is given and gives back (jobs, options, outcomes), and its parts.

See ``bot.delivery`` for how the jobs are delivered.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from bot.composer import Draft
from bot.errors import DeliveryError
from bot.mailer import Mailer
from bot.message import Outgoing
from bot.render import Renderer
from bot.retry import Random, RetryPolicy
from bot.settings import Settings
from bot.store import Claim, Store


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message (or one subscriber) in a run."""

    email: str
    status: str  # sent | skipped | failed | unknown | already | dry-run
    papers: int = 0
    detail: str = ""
    digest_date: date | None = None
    kind: str = "digest"
    ref: str = ""
    resent: bool = False  # sent again on purpose (``force``) although it had been sent
    code: int | None = None  # the SMTP reply code of a failure the server answered
    refused: tuple[int, str | None] | None = None
    """The reply (code, enhanced status) that refused the recipient's mailbox, which was then
    suppressed; None for any other outcome."""

    @property
    def answered(self) -> bool:
        """Whether the server had a say about this message: it accepted or refused it."""
        return self.status == "sent" or self.code is not None


@dataclass(frozen=True, slots=True)
class Job:
    """One message to deliver at most once: its ledger key, its papers, and how to write it.

    ``compose`` receives the claim: its Message-ID, and the paper ids to send (after a crash
    or a retry, those recorded with the first attempt). ``draft``, when given, says the same as
    plain data, so that a large run can compose in worker processes.
    """

    subscriber_id: int
    email: str
    day: date
    compose: Callable[[Claim], Outgoing]
    paper_ids: tuple[str, ...] = ()
    kind: str = "digest"
    ref: str = ""
    draft: Callable[[Claim], Draft] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """``retry_now``: temporary failures are due at once; ``force``: resend what was sent;
    ``domains``: how many recipient domains the subscribers have in all (see
    ``bot.refusals.MAILBOX_DOMAINS``), None when unknown."""

    retry_now: bool = False
    force: bool = False
    rand: Random = random.random
    domains: int | None = None


@dataclass
class DeliveryReport:
    """Every outcome, and why the run stopped early if it did.

    ``stopped_by`` is the SMTP error that stopped it (connection trouble, authentication, TLS);
    it is None when the run was not stopped, or stopped for a shutdown or because the ledger
    could not record a sent message. ``released`` counts the claimed
    messages given back unsent without an outcome of their own; ``unclaimed`` the jobs taken
    from those to deliver but never claimed, the run having stopped first (it leaves the rest of
    them untaken: the caller counts those). ``refused_all`` is the refusal the server gave every
    message of a run too small to stop (they are retried with backoff).
    """

    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str | None = None
    stopped_by: DeliveryError | None = None
    released: int = 0
    unclaimed: int = 0
    refused_all: DeliveryError | None = None


class DeliveryDeps(Protocol):
    """What the engine needs from a run's dependencies."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def mailer(self) -> Mailer | None: ...
    @property
    def renderer(self) -> Renderer: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def on_outcome(self) -> Callable[[Outcome], None]: ...
    @property
    def on_released(self) -> Callable[[int], None]: ...
    @property
    def stop(self) -> asyncio.Event: ...


def retry_policy(settings: Settings) -> RetryPolicy:
    """The backoff the settings ask for."""
    return RetryPolicy(
        first=timedelta(seconds=settings.retry_first_seconds),
        maximum=timedelta(seconds=settings.retry_max_seconds),
        give_up=timedelta(hours=settings.retry_give_up_hours),
    )


@dataclass(frozen=True, slots=True)
class Ready:
    """A composed message, ready for a sender."""

    job: Job
    claim: Claim
    message: Outgoing


@dataclass(frozen=True, slots=True)
class Composing:
    """Drafts a worker is composing, and the future of their messages."""

    part: list[tuple[Job, Claim, Draft]]
    future: asyncio.Future[list[Outgoing | str]]


async def chunks(jobs: Iterable[Job], size: int) -> AsyncGenerator[list[Job], None]:
    """``jobs`` in lists of ``size``, letting other tasks run after each job.

    Making a job can take a while (matching explains a digest's papers when it is made), and a
    batch made in one go would hold up the senders' replies for as long.
    """
    it = iter(jobs)
    while True:
        chunk: list[Job] = []
        for job in it:
            chunk.append(job)
            await asyncio.sleep(0)
            if len(chunk) == size:
                break
        if not chunk:
            return
        yield chunk
