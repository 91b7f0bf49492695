"""The always-on worker's state: the live profiles, source health, and the two jobs it runs.

``fetch_job`` pulls the configured sources; ``sweep_job`` reloads the profiles when the file
changed (once the change has settled), then sends alerts, due digests and due retries. Both are
plain coroutines, driven by the scheduler in production and called directly (with an injected
clock) in tests.

When a sweep's delivery stops because the SMTP server cannot be reached (or refuses the login or
TLS), delivery pauses (see ``bot.pause``). The unsent messages wait in the ledger (their attempts
not counted) and go out at the first sweep after the pause once the server answers; admin alerts
raised meanwhile are emailed then too.

When a job cannot reach or use the database, it ends there and the next run tries again: one
error line when the outage starts, and one line when a job works with the database again. The
messages a sweep had claimed and not handed to the server when the database went away are its
own: the first sweep that gets through gives them back, and they go out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta

from bot.admin import AdminAlerts, is_smtp_trouble, smtp_advice
from bot.delivery_jobs import Outcome
from bot.errors import BotError, Problem, ProfileError, RecipientDeliveryError
from bot.mailer import Mailer
from bot.models import Subscriber
from bot.pause import PAUSE_MAX, DeliveryPause
from bot.pipeline import Deps, SendReport, run_status, store_fetched
from bot.refusals import FEW_DOMAINS_IN_ROW, REFUSALS_IN_ROW, blames_server, domains_of
from bot.roster import Notes, ProfilesFile
from bot.schedule import should_announce
from bot.sources import FetchReport, SourceOutcome, every_source_failed
from bot.stopping import Stopped, unless_stopped
from bot.store import Removal, SyncReport, unavailable
from bot.sweep import Alerting, Catchup, held_back, sweep
from bot.text import plural

log = logging.getLogger(__name__)

SOURCE_FAILURES_BEFORE_ALERT = 3
REFUSALS_WITHIN = timedelta(hours=6)
"""How long a row of mailboxes refused the same way sweep after sweep may run: refusals further
apart than this are dead addresses met now and then, not a server refusing everyone now."""


class Worker:
    """What the scheduler's jobs act on."""

    def __init__(
        self, deps: Deps, mailer_factory: Callable[[], Mailer], profiles: ProfilesFile
    ) -> None:
        self.deps = deps
        self.mailer_factory = mailer_factory
        self.profiles = profiles
        self.admin = AdminAlerts(deps.settings, deps.clock, times=deps.store)
        self.roster: dict[int, Subscriber] = {}
        self.notes = Notes()
        """What was said of the profiles in use, said again only when new."""
        self.source_failures: dict[str, int] = {}
        self.sources_down = False
        """Whether every source failed every fetch of its last fetch job."""
        self.listing = False
        """Whether the lists are being fetched at start-up: due digests wait for them."""
        self.alerting = Alerting()
        """What alerts are read among, kept between sweeps."""
        self.catchup = Catchup()
        """What the next sweep makes up for, as the sweeps since the start left it."""
        self.busy = asyncio.Lock()
        """Held by a sweep, and by a fetch while it stores what it fetched."""
        self.fetching = asyncio.Lock()
        """Held by a fetch job from start to end: one fetch at a time."""
        self.pause = DeliveryPause(deps.store, deps.settings.smtp_fingerprint)
        """Whether, and until when, SMTP trouble pauses delivery."""
        self.database_down: str | None = None  # why, while jobs cannot use the database
        self.refused: list[Outcome] = []
        self.refused_since: datetime | None = None  # when the first of ``refused`` came
        """Mailboxes refused the same way since a message was last accepted, sweep after sweep
        (each was suppressed: see ``_refused_in_a_row``)."""

    def start(self) -> None:
        """Resume a delivery pause still in force (see ``DeliveryPause.resume``) and a failure of
        every source (``sources_failed_last``), take up the admin alerts kept unsent before
        this start, then load the profiles (the admin alerts' times are read from the store as
        needed). A file changed while the worker was down is judged as a reload is: when it
        removed most subscribers, or is invalid (or missing), the admin alert is kept for the
        first sweep to email; an invalid file leaves the last good profiles in use, as the
        store holds them. With none stored (a first start) an invalid file is fatal: there is
        no last good version."""
        self.pause.resume(self.deps.clock())
        self.sources_down = self.sources_failed_last()
        self.admin.recall_kept()
        try:
            subscribers = self.profiles.load()
        except ProfileError as exc:
            self._start_with_stored(exc)
            return
        report = self._adopt(subscribers)
        if "profiles" in self.admin.pending:  # a rejection kept from before: fixed since
            self.admin.resolved("profiles")
        if report.removal.most:
            self.admin.keep(*self._removal_alert(report.removal))

    def _start_with_stored(self, exc: ProfileError) -> None:
        """Serve the active subscribers of the store, the last good profiles file's (each as
        that file said: see ``Store.active_subscribers``), since the file cannot be used at
        start-up; ``exc`` again when the store holds none. The fixed file is adopted by the
        usual reload."""
        roster = self.deps.store.active_subscribers()
        if not roster:
            raise exc
        for problem in exc.problems:
            log.error("profiles rejected at start-up: %s", problem)
        self.roster = roster
        log.warning(
            "profiles: %s of the last good profiles file, as stored, until %s is fixed",
            plural(len(roster), "subscriber"), self.profiles.path,
        )  # fmt: skip
        self.admin.keep(*self._rejection_alert(exc))

    def _adopt(self, subscribers: tuple[Subscriber, ...]) -> SyncReport:
        """Make the profiles just loaded the roster (what changed is logged, as a warning when
        most subscribers were removed), and say once who on it gets no digest (see
        ``Notes``)."""
        report = self.deps.store.sync_subscribers(subscribers)
        self.roster = {report.ids[s.email.lower()]: s for s in subscribers}
        line = (
            f"profiles: {plural(len(subscribers), 'subscriber')} ({report.added} added, "
            f"{report.updated} updated, {report.reactivated} reactivated, "
            f"{report.deactivated} deactivated)"
        )
        if report.removal.most:
            log.warning("%s: %s", line, _removed(report.removal))
        else:
            log.info("%s", line)
        self.notes.say(self.profiles.warnings, subscribers, self.deps.store.suppressed())
        return report

    async def reload_if_changed(self) -> None:
        """Adopt an edited profiles file (telling the admin when it removed most subscribers),
        or keep the last good one and tell the admin why: also when reading it failed
        unexpectedly, so that the sweep goes on for the subscribers in use."""
        if not self.profiles.changed():
            return
        try:
            subscribers = await self.profiles.load_aside()
        except ProfileError as exc:
            for problem in exc.problems:
                log.error("profiles reload rejected: %s", problem)
            await self._notify(*self._rejection_alert(exc))
            return
        except Exception as exc:  # a defect in reading it: as rejected, and said whole
            log.exception("profiles reload failed")
            why = Problem(str(self.profiles.path), None, None, None, f"could not be read: {exc!r}")
            await self._notify(*self._rejection_alert(ProfileError([why])))
            return
        try:
            report = self._adopt(subscribers)
        except Exception:
            self.profiles.forget()  # not adopted: the next sweep reads it again
            raise
        self.admin.resolved("profiles")  # the next bad edit is emailed at once
        if report.removal.most:
            await self._notify(*self._removal_alert(report.removal))

    def _rejection_alert(self, exc: ProfileError) -> tuple[str, str, str]:
        """The admin alert (kind, what, what to do) on a profiles file rejected, at a reload
        or at start-up: the last good version stays in use."""
        what = (
            f"The profiles file{self._version()} was rejected; the previous version stays "
            f"in use.\n{exc}"
        )
        todo = (
            f"Fix the lines above and save {self.profiles.path} again "
            "(check with `paperbot profiles check`). If it has been fixed since, nothing is "
            "left to do: the worker adopts the fixed file by itself (its log then says "
            "`profiles: N subscribers`)."
        )
        return "profiles", what, todo

    def _removal_alert(self, removal: Removal) -> tuple[str, str, str]:
        """The admin alert (kind, what, what to do) on a file just adopted that removed most
        subscribers (see ``Removal.most``)."""
        return (
            "removed", f"The profiles file{self._version()} {_removed(removal)}.",
            f"If {self.profiles.path} was overwritten or cut short by mistake, restore it: the "
            "worker adopts it at its next sweep, and those subscribers get their digests again. "
            "If they were removed on purpose, nothing is left to do.",
        )  # fmt: skip

    def _version(self) -> str:
        """Which version of the profiles file was read last, to name it in an admin alert."""
        saved = self.profiles.saved_at
        return f" as saved at {saved:%Y-%m-%d %H:%M:%S} UTC" if saved else ""

    async def _notify(self, kind: str, what: str, todo: str) -> None:
        if self.pause.active(self.deps.clock()):  # kept, and emailed once delivery works again
            await self.admin.notify(None, kind, what, todo)
            return
        async with self.mailer_factory() as mailer:
            await self.admin.notify(mailer, kind, what, todo)

    def _note_held(self) -> None:
        """While delivery pauses, record how many due digests wait for its end (see
        ``DeliveryPause.record``)."""
        now = self.deps.clock()
        self.pause.record(held_back(self.deps, self.roster, now, self.catchup), now)

    async def _after_delivery(self, report: SendReport) -> None:
        """After a sweep whose delivery was not stopped: email the kept admin alerts (a
        connection failure then pauses delivery), and once the server accepted or refused a
        message again after a pause, say that delivery works again."""
        answered = any(o.answered for o in report.outcomes)
        # a rejected file edited since is judged again once the edit settles: its alert waits
        later = ("profiles",) if self.profiles.unsettled() else ()
        if set(self.admin.pending) - set(later):
            async with self.mailer_factory() as mailer:
                error = await self.admin.flush(mailer, later)
            if is_smtp_trouble(error):
                self.pause.begin(str(error), self.deps.clock())
                return
            answered = True
        if answered:
            self.pause.end()

    @asynccontextmanager
    async def _using_database(self, job: str) -> AsyncIterator[None]:
        """Run a job's body; when it cannot reach or use the database, end the job there and
        log that: an error line when the outage starts, a quieter one on later failures (info
        when the reason changed). The next run tries again."""
        try:
            yield
        except Exception as exc:
            reason = unavailable(exc)
            if reason is None:
                raise
            if self.database_down is None:
                log.error("database unavailable: %s; trying again at the next %s", reason, job)
            else:
                level = logging.DEBUG if reason == self.database_down else logging.INFO
                log.log(level, "database still unavailable: %s", reason)
            self.database_down = reason

    def _settle_owed(self) -> None:
        """Give back the messages this worker claimed and had not handed to the server when
        the database went away (and record ``sent`` those the server had accepted): they are
        its own, so they go out at once rather than when their lease runs out. A message
        whose data may have reached the server is not among them: it waits, as the rules of
        an unknown outcome say."""
        released, sent = self.deps.store.ledger.settle_owed(self.deps.clock())
        done = [f"{plural(released, 'claimed message')} given back (due now)"] if released else []
        done += [f"{plural(sent, 'accepted message')} recorded sent"] if sent else []
        if done:
            log.info("what the database refused before is recorded now: %s", ", ".join(done))

    def _database_works(self) -> None:
        """After a job that used the database: say so once it could not before."""
        if self.database_down is not None:
            self.database_down = None
            log.warning("database available again")

    async def fetch_job(self) -> None:
        """Fetch yesterday's and today's lists (late papers, new upvotes); watch source health.

        The sources are asked outside ``busy``: one that is slow or keeps asking to retry later
        may take many minutes, and the sweeps (digests, alerts, retries) go on meanwhile. What
        they gave is stored, and their health judged, between two sweeps. However it ends, the
        due digests that waited for the lists fetched at start-up wait no more (see
        ``listing``)."""
        try:
            await self._fetch_job()
        finally:
            self.listing = False

    async def _fetch_job(self) -> None:
        """What ``fetch_job`` does."""
        async with self.fetching, self._using_database("fetch"):
            today = self.deps.clock().date()
            store, days = self.deps.store, (today - timedelta(days=1), today)
            outcomes: dict[str, list[tuple[date, SourceOutcome]]] = {}
            with store.run("fetch", self.deps.clock()) as run:
                try:
                    run.status = await self._fetch_days(days, outcomes)
                except asyncio.CancelledError:  # a stop that would not wait for it
                    run.status = "stopped"
                    raise
                finally:
                    shown = [
                        o.summary() | {"day": d}
                        for results in outcomes.values()
                        for d, o in results
                    ]
                    run.summary = {"days": days, "sources": shown}
            async with self.busy:
                self._database_works()
                await self._check_sources(today - timedelta(days=1), outcomes)

    async def _fetch_days(
        self, days: Sequence[date], outcomes: dict[str, list[tuple[date, SourceOutcome]]]
    ) -> str:
        """Fetch and store each day's lists, adding each source's outcome per day to
        ``outcomes``; how the fetch ended (ok, failed, stopped). A stop cancels the fetch at
        once: it sends nothing, and the next start fetches again."""
        failed, stop = False, self.deps.stop
        for day in days:
            try:
                fetched = await unless_stopped(self._fetch(day), stop, f"the fetch for {day}")
                async with self.busy:  # not in the middle of a sweep: see ``fetch_job``
                    summary = store_fetched(self.deps, day, fetched)
            except Stopped:
                return "stopped"
            except BotError as exc:
                log.error("fetch for %s failed: %s", day, exc)
                failed = True
                continue
            failed = failed or bool(summary.report.failed)
            for outcome in summary.report.outcomes:
                outcomes.setdefault(outcome.source, []).append((day, outcome))
        return "failed" if failed else "ok"

    def sources_failed_last(self) -> bool:
        """Whether every source failed the latest fetch that finished (before this start, as
        the runs table keeps it): digests with nothing new wait for papers, as they did before
        the restart, until a fetch gets some."""
        for run in self.deps.store.recent_runs(5, command="fetch"):
            statuses = [source.get("status") for source in run.summary.get("sources", [])]
            if run.status in {"ok", "failed"} and statuses:  # not one stopped or killed early
                return all(status == "failed" for status in statuses)
        return False

    async def _fetch(self, day: date) -> FetchReport:
        """The day's lists from the sources (as a coroutine, which a stop can cancel)."""
        return await self.deps.fetch(day)

    async def _check_sources(
        self, yesterday: date, outcomes: Mapping[str, Sequence[tuple[date, SourceOutcome]]]
    ) -> None:
        """Count failed fetch jobs per source; flag a source empty on a complete publishing day.

        Only yesterday's list is judged for emptiness: today's may simply not be out yet.
        """
        if outcomes:  # a job that fetched nothing says nothing about the sources
            every = [o for results in outcomes.values() for _, o in results]
            self.sources_down = every_source_failed(every)
        for name, results in outcomes.items():
            failed = [o for _, o in results if o.status == "failed"]
            empty = any(d == yesterday and o.status == "empty" for d, o in results)
            failures = self.source_failures.get(name, 0) + 1 if failed else 0
            self.source_failures[name] = failures
            if failures >= SOURCE_FAILURES_BEFORE_ALERT:
                await self._notify(
                    "source",
                    f"Source {name} failed {failures} fetches in a row: {failed[0].reason}",
                    "Check the source's status page and the network; paperbot keeps retrying.",
                )  # fmt: skip
            elif empty and should_announce(name, yesterday):
                await self._notify(
                    "source",
                    f"Source {name} had no papers for {yesterday}, a day it normally publishes.",
                    "If it was not a holiday, check the source; the next fetch will try again.",
                )  # fmt: skip

    async def sweep_job(self) -> SendReport:
        """Reload profiles if edited, then send what is due; alert the admin on trouble.

        A sweep is recorded ``running`` while it runs (so a killed worker's sweep shows as
        interrupted); one that settled or left out nothing is then forgotten.
        """
        async with self.busy, self._using_database("sweep"):
            listing = self.listing  # as the sweep found it (the fetch may end meanwhile)
            self._settle_owed()
            await self.reload_if_changed()
            if self.pause.active(self.deps.clock()):
                self._note_held()
                return SendReport()
            self.pause.recount()
            started, roster = self.deps.clock(), self.roster
            done = SendReport()  # what the sweep did as it went: what a cancelled one did
            with self.deps.store.run("sweep", started) as run:
                try:
                    async with self.mailer_factory() as mailer:
                        report = await sweep(
                            _tallying(self.deps, mailer, done), roster, started, self.alerting,
                            sources_down=self.sources_down, listing=listing,
                            catchup=self.catchup,
                        )  # fmt: skip
                except asyncio.CancelledError:  # a stop that would not wait: what it did so far
                    run.status = "stopped"
                    run.summary = done.summary() | {"stopped": "cancelled at shutdown"}
                    raise
                except Exception as exc:  # the database went away: what it did so far, and why
                    if (reason := unavailable(exc)) is not None:
                        stopped = f"database unavailable: {reason}"
                        run.summary = done.summary() | {"stopped": stopped}
                    raise
                run.status, run.summary = run_status(report), report.summary()
                changed = len(report.waiting) != len(self.catchup.waiting)
                run.kept = bool(report.outcomes or report.stopped or changed)
            self._database_works()
            if not report.stopped:  # a stopped sweep may not have reached the digests
                self._log_waiting(report.waiting, listing)
                self.catchup = self.catchup.swept(started, roster, report.waiting)
            await self._check_report(report)
            if self.pause.active(self.deps.clock()):
                self.pause.hold_retries(self.deps.clock())
                self._note_held()
            return report
        return SendReport()  # the database could not be used

    def _log_waiting(self, waiting: Sequence[tuple[int, date]], listing: bool) -> None:
        """Say when digests start waiting for papers (for the lists being fetched at start-up
        while ``listing``), when their number changes, and when none waits any more."""
        if len(waiting) != len(self.catchup.waiting):
            if waiting:
                n = len(waiting)
                what = "1 due digest waits" if n == 1 else f"{n} due digests wait"
                if listing:
                    log.info("%s for the lists being fetched at start-up", what)
                else:
                    level = logging.INFO if self.catchup.waiting else logging.WARNING
                    log.log(level, "%s for papers: every source failed its last fetch", what)
            else:
                log.info("no digest waits for papers any more")

    async def _refused_in_a_row(self, report: SendReport) -> bool:
        """Whether mailboxes were refused the same way sweep after sweep, in numbers and at
        domains that blame the server rather than the addresses (as a delivery run does within
        itself, see ``bot.delivery``): a worker whose subscribers' send times are spread sends
        one digest a sweep, and each refusal alone suppressed its address. Then those
        suppressions are undone, their messages go again once the server works, delivery
        pauses and the admin is told."""
        now = self.deps.clock()
        if self.refused_since is not None and now - self.refused_since > REFUSALS_WITHIN:
            self.refused = []  # refusals days apart are not one server's fault of the moment
        first = self.refused[:1]
        self.refused = refused_in_a_row(self.refused, report.outcomes)[-FEW_DOMAINS_IN_ROW:]
        if self.refused[:1] != first:
            self.refused_since = now
        if len(self.refused) < REFUSALS_IN_ROW:
            return False
        if not blames_server([o.email for o in self.refused], domains_of(self.roster.values())):
            return False
        refused, self.refused = self.refused, []
        suppressed = self.deps.store.suppressed()
        undone = [suppressed[o.email.lower()] for o in refused if o.email.lower() in suppressed]
        self.deps.store.restore(undone, now)
        last = refused[-1]
        reason = f"{len(refused)} mailboxes in a row refused the same way: {last.detail}"
        self.pause.begin(reason, self.deps.clock())
        self.pause.hold_retries(self.deps.clock())
        cause = RecipientDeliveryError(last.detail, *last.refused or (None, None))
        await self._notify(
            "smtp", f"Sending paused: {reason}",
            f"{smtp_advice(cause)} These addresses are not suppressed: their messages go again "
            "once the server accepts mail.",
        )  # fmt: skip
        return True

    async def _check_report(self, report: SendReport) -> None:
        """Pause delivery after SMTP trouble and tell the admin what to check; after a sweep
        that went through, send what was kept; alert the admin when many deliveries failed."""
        if report.stopped_by is not None:
            self.pause.begin(report.stopped or str(report.stopped_by), self.deps.clock())
            await self._notify(
                "smtp", f"Sending stopped: {report.stopped}",
                f"{smtp_advice(report.stopped_by)} paperbot tries again after a pause (at most "
                f"{PAUSE_MAX.seconds // 60} minutes); unsent digests and alerts go out at the "
                "first sweep after it is fixed.",
            )  # fmt: skip
            return
        if report.stopped:  # a shutdown, or a ledger that could not record
            return
        await self._after_delivery(report)
        if await self._refused_in_a_row(report):
            return
        if report.refused_all is not None:  # too few messages to stop the run: say it anyway
            await self._notify(
                "smtp", f"Every {report.refused} of a sweep was refused: {report.refused_all}",
                f"{smtp_advice(report.refused_all)} The refused digests and alerts are tried "
                "again with backoff.",
            )  # fmt: skip
            return
        attempted = report.count("sent") + report.count("failed")
        share = self.deps.settings.alert_failed_share
        if attempted >= 5 and report.count("failed") / attempted > share:
            await self._notify(
                "failures",
                f"{report.count('failed')} of {attempted} deliveries failed in one sweep.",
                "Run `paperbot status` for the reasons; temporary failures are retried.",
            )  # fmt: skip


def refused_in_a_row(refused: list[Outcome], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """``refused`` carried on over ``outcomes``: the mailboxes refused with one reply since a
    message was last accepted (another reply starts a new row)."""
    for outcome in outcomes:
        if outcome.status == "sent":
            refused = []
        elif outcome.refused is not None:
            same = refused and refused[0].refused == outcome.refused
            refused = [*refused, outcome] if same else [outcome]
    return refused


def _tallying(deps: Deps, mailer: Mailer, done: SendReport) -> Deps:
    """``deps`` for a sweep delivering by ``mailer``: each outcome is logged and, with each
    release, taken into ``done`` as it comes, so that a sweep cancelled before it returns its
    report is known by what it did."""

    def outcome(happened: Outcome) -> None:
        done.outcomes.append(happened)
        log_outcome(happened)

    def released(count: int) -> None:
        done.released += count

    return replace(deps, mailer=mailer, on_outcome=outcome, on_released=released)


def _removed(removal: Removal) -> str:
    """Who a sync that removed most subscribers removed, and what that means for them."""
    return f"removed {removal} at once: they get no more mail"


def log_outcome(outcome: Outcome) -> None:
    """One log line per settled message; a warning when it was not delivered."""
    if outcome.kind == "alert":  # named by its first paper
        others = f" (+{outcome.papers - 1} more)" if outcome.papers > 1 else ""
        what = f"alert on {outcome.ref}{others}"
    else:
        what = f"{outcome.kind} for {outcome.digest_date}"
    detail = f" ({outcome.detail})" if outcome.detail and outcome.detail != outcome.kind else ""
    level = logging.WARNING if outcome.status in {"failed", "unknown"} else logging.INFO
    log.log(level, "%s to %s: %s%s", what, outcome.email, outcome.status, detail)
