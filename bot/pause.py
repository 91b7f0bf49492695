"""The always-on worker's delivery pause after SMTP trouble, and the run that records it.

When a sweep's delivery stops because the SMTP server cannot be reached (or refuses the login or
TLS), delivery pauses: no sweep sends anything for ``PAUSE_FIRST``, then twice as long after each
sweep that stops again, up to ``PAUSE_MAX``. The retries due meanwhile are due at its end in the
ledger. The due digests not claimed yet are in no ledger row: a ``paused`` sweep in the runs
table counts them, one for the whole outage (at most: those with nothing to send are known once
matched, after the pause). It records when the pause ends too: a restarted worker resumes a
pause still in force.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.store import Store
from bot.store.tables import PAUSED

log = logging.getLogger(__name__)

PAUSE_FIRST = timedelta(minutes=1)
PAUSE_MAX = timedelta(minutes=30)
"""How long delivery pauses after a sweep stopped for SMTP trouble: doubling from the first
pause to the longest while it keeps failing (shorter than the retry settings of single messages:
the whole queue waits, and it should go out soon after the server is back)."""


class DeliveryPause:
    """Whether, until when and why email delivery pauses, and the ``paused`` run that tells
    ``paperbot status`` and a restarted worker about it. ``smtp`` is the fingerprint of the SMTP
    settings in use (see ``resume``)."""

    def __init__(self, store: Store, smtp: str) -> None:
        self.store = store
        self.smtp = smtp
        self.until: datetime | None = None
        """When the pause ends (None when delivery has worked since the last one)."""
        self.length = timedelta(0)
        """How long the last pause was: the next one, soon after, is twice as long."""
        self.why = ""
        """What the log said when delivery last paused: until when, and why."""
        self._held = 0
        self._held_until: datetime | None = None
        """The due digests held back by the pause, and its end, as last recorded (see
        ``record``)."""
        self._run: int | None = None
        """The ``paused`` run that records them, one until delivery works again."""

    def active(self, now: datetime) -> bool:
        """Whether delivery waits out a pause at ``now``."""
        return self.until is not None and now < self.until

    def begin(self, reason: str, now: datetime) -> None:
        """Pause delivery, twice as long as last time if it failed again soon after a pause."""
        last = self.until
        again = last is not None and now - last <= PAUSE_MAX
        self.length = min(2 * self.length, PAUSE_MAX) if again else PAUSE_FIRST
        self.until = now + self.length
        until = self.until.astimezone(UTC).strftime("%H:%M:%S UTC")
        self.why = f"email delivery paused until {until}: {reason}"
        if again:
            log.info("email delivery still failing; paused until %s: %s", until, reason)
        else:
            log.warning("email delivery paused until %s: %s", until, reason)

    def hold_retries(self, now: datetime) -> None:
        """Record that the retries due during the pause wait for its end, so that ``paperbot
        status`` says when they go out (a manual ``paperbot send`` still sends them at once)."""
        assert self.until is not None
        self.store.ledger.postpone_retries(self.until, now)

    def record(self, held: int, now: datetime) -> None:
        """Record until when the pause lasts and how many due digests (``held``) wait for its
        end, when either changed: they have no ledger row yet, so only a ``paused`` sweep in the
        runs table tells ``paperbot status`` about them, and a restarted worker about the pause
        (see ``resume``). One such run stands for the whole outage: it is updated, so that a
        long outage does not push the other runs out of ``status``."""
        assert self.until is not None
        if (held, self.until) == (self._held, self._held_until):
            return
        self._held, self._held_until = held, self.until
        if self._run is None:
            self._run = self.store.start_run("sweep", now)
        summary = {
            "counts": {"held": held}, "until": self.until.isoformat(),
            "pause": self.length.total_seconds(), "stopped": self.why, "smtp": self.smtp,
        }  # fmt: skip
        self.store.finish_run(self._run, PAUSED, summary)

    def recount(self) -> None:
        """Forget the count last recorded: a sweep that goes ahead may send those digests, so a
        pause after it records its count again."""
        self._held = 0

    def resume(self, now: datetime) -> None:
        """Resume the pause the latest ``paused`` sweep records, if it has not ended: the
        digests and alerts it holds back wait for its end after a restart too (the retries wait
        in the ledger anyway). Not when the SMTP settings changed since (a restart to apply a
        fix): delivery is tried at once."""
        for run in self.store.recent_runs(1, status=PAUSED):
            until = run.pause_end()
            if until is None or until <= now:
                return
            if run.summary.get("smtp") != self.smtp:
                log.info("the SMTP settings changed since delivery paused: trying it at once")
                return
            self.until, self.why = until, str(run.summary.get("stopped", ""))
            self.length = timedelta(seconds=run.summary.get("pause", PAUSE_FIRST.total_seconds()))
            self._run, self._held, self._held_until = run.id, run.held(now), until
            log.warning("%s (a pause recorded before this start)", self.why)

    def end(self) -> None:
        """Once the server accepted or refused a message again: after a pause, say that
        delivery works again (the next trouble starts a short pause and a new ``paused``
        run)."""
        if self.until is not None:
            self.until, self.length, self._run = None, timedelta(0), None
            log.warning("email delivery works again")
