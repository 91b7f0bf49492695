"""The worker's jobs with an injected clock: local send times, catch-up, reload, alerts, and
pausing delivery while the SMTP server cannot be reached."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import time_ns
from typing import Any, TypeVar

import pytest
from rich.console import Console
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, create_engine

from bot import pipeline, scheduler, status
from bot import sweep as sweep_module
from bot.admin import AdminAlerts, smtp_advice
from bot.alerts import Among
from bot.cli import make_fetch, read_profiles
from bot.errors import (
    AuthenticationDeliveryError,
    ConnectionDeliveryError,
    DeliveryError,
    DroppedDeliveryError,
    PermanentDeliveryError,
    ProfileError,
    RecipientDeliveryError,
    TlsDeliveryError,
    UnknownHostDeliveryError,
)
from bot.mailer import Mailer, SmtpMailer
from bot.message import Outgoing
from bot.models import Paper
from bot.outbox import OutboxMailer
from bot.pipeline import Deps, SendOptions, fetch_and_store, send_digests
from bot.profiles import Profiles
from bot.render import Renderer
from bot.roster import ProfilesFile
from bot.scheduler import run_until
from bot.settings import Settings, load_settings
from bot.sources import FetchReport, SourceOutcome
from bot.store import ClaimRequest, Store
from bot.store.deliveries import DeliveryQueries
from bot.store.runs import this_process
from bot.store.tables import Delivery
from bot.worker import Worker
from tests.conftest import (
    UNMATCHED,
    SmtpServer,
    crowd_profiles,
    free_port,
    matched_emails,
    reader,
    stored_summaries,
)
from tests.postgres import postgres_url  # noqa: F401  (fixture)
from tests.smtp_faults import FaultServer, serve

PROFILES = """\
subscribers:
  - email: ada@example.org
    timezone: Europe/Berlin
    send_at: "07:30"
    interests:
      keywords: ["mixture of experts", "sparse experts", "expert routing"]
    alerts:
      - name: Okafor
        authors: ["L. Okafor"]
  - email: grace@example.org
    timezone: America/New_York
    send_at: "06:45"
    interests:
      keywords: ["diffusion model", "score-based"]
  - email: alan@example.org
    timezone: Asia/Kolkata
    send_at: "09:00"
    send_empty: true
    interests:
      keywords: ["quantum error correction"]
"""


def only_ada(send_at: str = "08:00", keyword: str = "mixture of experts", **more: str) -> str:
    """A profiles file with one UTC subscriber, ada, and ``more`` fields of hers."""
    extra = "".join(f"    {name}: {value}\n" for name, value in more.items())
    return (
        f'subscribers:\n  - email: ada@example.org\n    send_at: "{send_at}"\n{extra}'
        f'    interests:\n      keywords: ["{keyword}"]\n'
    )


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def set(self, *args: int) -> None:
        self.now = datetime(*args, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    """05:00 UTC: midnight in New York, 06:00 in Berlin, 10:30 in Kolkata."""
    return Clock(datetime(2026, 11, 25, 5, 0, tzinfo=UTC))


@pytest.fixture
def profiles_path(tmp_path: Path) -> Path:
    path = tmp_path / "live-profiles.yaml"
    path.write_text(PROFILES)
    return path


@pytest.fixture
def config(env: dict[str, str], profiles_path: Path, smtp_server: SmtpServer) -> Settings:
    return load_settings(
        env_file=None, profiles=profiles_path, admin_email="admin@paperbot.example.org",
        **{k.lower(): v for k, v in {"SMTP_HOST": smtp_server.host, "SMTP_PORT": smtp_server.port,
                                      "SMTP_SECURITY": "none"}.items()},
    )  # fmt: skip


def start_worker(config: Settings, clock: Clock, mailer: Callable[[], Mailer]) -> Worker:
    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(),
        fetch=make_fetch(config, config.sources), clock=clock,
    )  # fmt: skip
    worker = Worker(deps, mailer, ProfilesFile(config.profiles, read_profiles))
    worker.start()
    return worker


@pytest.fixture
def make_worker(config: Settings, clock: Clock, smtp_server: SmtpServer) -> Callable[[], Worker]:
    def factory() -> Worker:
        return start_worker(
            config, clock, lambda: SmtpMailer(smtp_server.host, smtp_server.port, security="none")
        )

    return factory


def recipients(server: SmtpServer) -> list[str]:
    return [m["To"].addresses[0].addr_spec for m in server.messages]


def subjects(server: SmtpServer, email: str) -> list[str]:
    return [str(m["Subject"]) for m in server.handler.to(email)]


async def test_each_digest_goes_out_once_at_its_local_time(
    make_worker: Callable[[], Worker], clock: Clock, smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    await worker.fetch_job()
    await worker.sweep_job()
    # ada's alert, and alan's "nothing today" note: 09:00 has passed in Kolkata
    assert recipients(smtp_server) == ["ada@example.org", "alan@example.org"]
    assert "Nothing matched" in subjects(smtp_server, "alan@example.org")[0]
    clock.set(2026, 11, 25, 6, 31)  # 07:31 in Berlin
    await worker.sweep_job()
    clock.set(2026, 11, 25, 11, 46)  # 06:46 in New York
    await worker.sweep_job()
    await worker.sweep_job()
    clock.set(2026, 11, 25, 23, 0)
    await worker.sweep_job()
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "ada@example.org", "alan@example.org", "grace@example.org",
    ]  # fmt: skip


async def test_a_sweep_stopped_while_matching_says_its_alerts_went(
    make_worker: Callable[[], Worker], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop while the sweep matches its digests (ada's alert is out already) ends it there:
    the sweep is recorded stopped before any digest was sent, not as having sent nothing."""
    worker = make_worker()
    await worker.fetch_job()
    loop, release = asyncio.get_running_loop(), threading.Event()
    select = pipeline.select

    def stopped_select(*args: Any) -> Any:
        loop.call_soon_threadsafe(worker.deps.stop.set)
        release.wait(10)
        return select(*args)

    monkeypatch.setattr(pipeline, "select", stopped_select)
    try:
        report = await worker.sweep_job()
    finally:
        release.set()
    assert recipients(smtp_server) == ["ada@example.org"]  # her alert, no digest
    (run,) = worker.deps.store.recent_runs(command="sweep")
    assert (run.status, run.summary["counts"]["sent"]) == ("stopped", 1)
    assert run.summary["stopped"] == report.stopped == "shutting down before any digest was sent"


async def test_alert_once_per_paper_and_not_repeated_in_the_digest(
    make_worker: Callable[[], Worker], clock: Clock, smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    await worker.fetch_job()
    await worker.sweep_job()
    await worker.sweep_job()
    alerts = smtp_server.handler.to("ada@example.org")
    assert len(alerts) == 1 and "Okafor" in str(alerts[0]["Subject"])
    assert "Router Z-Loss" in str(alerts[0]["Subject"])
    clock.set(2026, 11, 25, 6, 31)
    await worker.sweep_job()
    digest = smtp_server.handler.to("ada@example.org")[1]
    text = digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "2611.10002" in text and "2611.10001" not in text


async def test_a_paper_sent_in_a_digest_never_comes_again_as_an_alert(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Ada's digest carried L. Okafor's paper; then she adds an alert for L. Okafor: the alert
    does not bring that paper a second time."""
    profiles_path.write_text(only_ada())
    worker = make_worker()
    await worker.fetch_job()
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()
    (digest,) = smtp_server.handler.to("ada@example.org")
    assert "2611.10001" in digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    _edit(profiles_path, only_ada() + '    alerts:\n      - authors: ["L. Okafor"]\n')
    clock.set(2026, 11, 25, 9, 0)
    await worker.sweep_job()
    assert [m["Message-ID"] for m in smtp_server.handler.to("ada@example.org")] == [
        digest["Message-ID"]
    ]
    assert worker.roster and all(s.alerts for s in worker.roster.values())


async def test_a_quiet_day_note_after_an_alert_says_the_match_came_earlier(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """The day's only match went out as an alert: the note does not say nothing matched."""
    alert = '    alerts:\n      - name: Okafor\n        authors: ["L. Okafor"]\n'
    profiles_path.write_text(only_ada(keyword="router z-loss", send_empty="true") + alert)
    worker = make_worker()
    await worker.fetch_job()
    await worker.sweep_job()  # 05:00: the alert
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()  # 08:01: the digest, with nothing new to hold
    alert_message, note = smtp_server.handler.to("ada@example.org")
    assert "2611.10001" in alert_message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert str(note["Subject"]) == "Nothing new matched your interests on Wed 25 Nov"
    text = " ".join(note.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert "1 paper for Wednesday 25 November 2026 reached you earlier; none of the" in text


async def test_a_day_whose_every_paper_came_as_an_alert_does_not_wait_for_papers(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """While the sources are down, a digest without papers waits for them; the day's papers
    are there, though, if all of them came as alerts."""
    alert = '    alerts:\n      - name: Lee\n        authors: ["K. Lee"]\n'
    profiles_path.write_text(
        only_ada(keyword="quantum error correction", send_empty="true") + alert
    )
    worker = make_worker()
    worker.deps.store.save_papers([moe_paper(1)], date(2026, 11, 25), clock())
    await worker.sweep_job()  # 05:00: the alert
    worker.sources_down = True  # a digest with nothing to hold would wait for its papers
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()
    assert worker.catchup.waiting == ()
    assert subjects(smtp_server, "ada@example.org")[1:] == [
        "Nothing new matched your interests on Wed 25 Nov"
    ]


def moe_paper(n: int) -> Paper:
    return Paper(
        id=f"2611.2{n:04d}", title=f"Sparse Mixture of Experts Study {n}",
        abstract="We study mixture of experts routing and sparse experts at scale.",
        authors=("Kim Lee",),
    )  # fmt: skip


LEE = '    alerts:\n      - name: Lee\n        authors: ["K. Lee"]\n'
"""An alert rule of ada's that every ``moe_paper`` fires."""
NOV_25 = date(2026, 11, 25)


def plain(message: object) -> str:
    """The plain-text part of a received message."""
    return message.get_body(("plain",)).get_content()  # type: ignore[attr-defined,no-any-return]


def alert_rows(store: Store) -> list[tuple[str, str, list[str], str | None]]:
    """(status, ref, papers, Message-ID) of each alert row, in the order they were made."""
    rows = store.ledger.alert_rows(list(store.active_subscribers()), date.min)
    made = sorted({row.id: row for row in rows.values()}.items())
    return [(r.status, r.ref, r.paper_ids, r.message_id) for _, r in made]


async def test_alert_words_are_read_against_the_stored_papers_as_digest_keywords_are(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """A paper stored three weeks ago writes "cat" as a word: today's paper named CAT fires no
    alert for "cat", while "rlhf", which no stored paper writes as a word, finds "RLHF", and
    "dpo" finds "DPO" in a paper stored after the previous sweep."""
    rules = '    alerts:\n      - keywords: ["cat", "rlhf", "dpo"]\n        name: Tuning\n'
    profiles_path.write_text(only_ada() + rules)
    worker = make_worker()
    store = worker.deps.store
    farm = Paper("2611.01001", "Herd monitoring from drones", "We spot a cat or a cow in photos.")
    store.save_papers([farm], NOV_25 - timedelta(days=20), clock())
    adapters = Paper("2611.20001", "CAT: contrastive adapter tuning", "We present CAT for vision.")
    feedback = Paper("2611.20002", "Cheaper RLHF", "We cut the cost of RLHF by half.")
    store.save_papers([adapters, feedback], NOV_25, clock())
    await worker.sweep_job()
    (first,) = smtp_server.handler.to("ada@example.org")
    assert str(first["Subject"]) == "Alert for “Tuning”: Cheaper RLHF"
    assert "adapter" not in plain(first)
    preferences = Paper("2611.20003", "DPO without a reference", "DPO needs no reward model.")
    store.save_papers([adapters, feedback, preferences], NOV_25, clock())
    await worker.sweep_job()
    _, second = smtp_server.handler.to("ada@example.org")
    assert str(second["Subject"]) == "Alert for “Tuning”: DPO without a reference"
    assert "adapter" not in plain(second)


SSM_RULE = '    alerts:\n      - keywords: ["state space model"]\n        name: Sequences\n'
SSM_PAPER = Paper(
    "2611.30001", "Faster SSM training", "We train an SSM for speech in half the time."
)
"""A paper that writes "SSM" without saying what it stands for: no alert for the rule."""


async def swept_with_ssm(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path
) -> Worker:
    """A worker for Ada, whose alert rule is "state space model", after a sweep of
    ``SSM_PAPER`` stored in today's list."""
    profiles_path.write_text(only_ada() + SSM_RULE)
    worker = make_worker()
    worker.deps.store.save_papers([SSM_PAPER], NOV_25, clock())
    await worker.sweep_job()
    return worker


async def test_alert_words_are_read_again_once_an_earlier_list_is_stored(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Today's paper writes "SSM" without saying what it stands for: no alert for "state space
    model". A paper of an earlier list stored after that sweep defines "state space model
    (SSM)": the next sweep reads today's paper again, and it fires."""
    worker = await swept_with_ssm(make_worker, clock, profiles_path)
    store = worker.deps.store
    assert smtp_server.handler.to("ada@example.org") == [], "it writes only SSM"
    audio = Paper(
        "2611.03001", "Sequences of sound", "A state space model (SSM) reads long audio clips."
    )
    store.save_papers([audio], NOV_25 - timedelta(days=5), clock())
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Sequences”: Faster SSM training"


async def test_a_paper_updated_by_a_later_fetch_of_an_earlier_list_is_read_again(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Today's paper fires no alert for "state space model": it writes only "SSM". A fetch of
    a list from before the 30 days alerts read among (a backfill) carries it again, its abstract
    now writing the phrase out: the stored paper is updated (keeping its list date), and the
    next sweep reads it as it is now."""
    worker = await swept_with_ssm(make_worker, clock, profiles_path)
    store, today = worker.deps.store, SSM_PAPER
    assert smtp_server.handler.to("ada@example.org") == [], "it writes only SSM"
    clock.set(2026, 11, 25, 5, 10)
    revised = replace(today, abstract="We train a state space model for speech, twice as fast.")
    assert store.save_papers([revised], NOV_25 - timedelta(days=40), clock()) == (0, 1)
    stored = store.stored_paper(today.id)
    assert stored is not None and (stored.paper, stored.list_date) == (revised, NOV_25)
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Sequences”: Faster SSM training"
    assert "twice as fast" in plain(alert)


async def test_an_alert_rule_given_other_words_is_checked_afresh_against_the_same_papers(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """The sweeps remember the papers a rule fired nothing on, as long as the papers and what
    subscribers wrote stay the same: the admin giving the rule other words (an alert's words
    are not among those) makes the next sweep check the same paper against them."""
    rules = '    alerts:\n      - keywords: ["{}"]\n        name: Sequences\n'
    profiles_path.write_text(only_ada() + rules.format("state space model"))
    worker = make_worker()
    scans = Paper("2611.30001", "Selective scans for audio", "A selective scan reads sound.")
    worker.deps.store.save_papers([scans], NOV_25, clock())
    await worker.sweep_job()
    clock.set(2026, 11, 25, 5, 1)
    await worker.sweep_job()
    assert smtp_server.handler.to("ada@example.org") == []
    _edit(profiles_path, only_ada() + rules.format("selective scan"))
    clock.set(2026, 11, 25, 5, 2)
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Sequences”: Selective scans for audio"


T = TypeVar("T")


def loop_goes_on_while(
    read: Callable[..., T],
) -> tuple[Callable[..., T], Callable[[], Awaitable[None]], list[bool]]:
    """``read`` made to wait, once called, until the event loop has run ``meanwhile`` (a task
    to start beside the call); and whether it did, once per read (it cannot if the read holds
    the loop)."""
    reading, loop_ran, waited = threading.Event(), threading.Event(), []

    def waiting(*args: Any, **kwargs: Any) -> T:
        reading.set()
        waited.append(loop_ran.wait(timeout=5))
        return read(*args, **kwargs)

    async def meanwhile() -> None:
        while not reading.is_set():
            await asyncio.sleep(0.01)
        loop_ran.set()

    return waiting, meanwhile, waited


async def test_the_papers_alerts_are_read_among_are_read_while_the_event_loop_goes_on(
    make_worker: Callable[[], Worker], smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the stored window again (about a second per 10,000 papers, after each fetch)
    does not hold up the event loop: what else it carries (messages in flight, the scheduler)
    goes on meanwhile."""
    worker = make_worker()
    await worker.fetch_job()
    reading, meanwhile, waited = loop_goes_on_while(Among.of)
    monkeypatch.setattr(Among, "of", reading)
    other = asyncio.create_task(meanwhile())
    await worker.sweep_job()
    await other
    assert waited == [True]
    (alert,) = smtp_server.handler.to("ada@example.org")  # read among them
    assert "Okafor" in str(alert["Subject"])


@pytest.mark.parametrize(
    ("owner", "read"),
    [(Store, "papers_between"), (DeliveryQueries, "digests_on")],
    ids=["papers", "ledger rows"],
)
async def test_what_due_digests_are_made_from_and_checked_against_is_read_while_the_loop_goes_on(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch, owner: type, read: str,
) -> None:  # fmt: skip
    """The stored papers due digests are made from (their candidates, and the 30 days their
    keywords are read among: once per sweep), and the ledger rows of their dates that say which
    are settled already (tens of thousands for as many subscribers), are read off the event
    loop: what else it carries goes on meanwhile."""
    profiles_path.write_text(only_ada())
    worker = make_worker()
    await worker.fetch_job()
    reading, meanwhile, waited = loop_goes_on_while(getattr(owner, read))
    monkeypatch.setattr(owner, read, reading)
    other = asyncio.create_task(meanwhile())
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()
    await other
    assert waited == [True]
    (digest,) = smtp_server.handler.to("ada@example.org")
    assert "2611.10001" in plain(digest)


async def test_papers_firing_in_one_sweep_go_out_in_one_alert_and_never_again(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Three papers fire at once: one alert lists them all, in the order they were listed; they
    are in no later alert nor in the digest, and a paper stored later fires an alert of its
    own."""
    caplog.set_level(logging.INFO, logger="bot")
    profiles_path.write_text(only_ada() + LEE)
    worker = make_worker()
    store = worker.deps.store
    other = Paper("2611.29999", "Mixture of Experts Without Lee", "On mixture of experts.")
    store.save_papers([moe_paper(3), moe_paper(1), other, moe_paper(2)], NOV_25, clock())
    await worker.sweep_job()
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Lee”: 3 new papers"
    text = plain(alert)
    assert "3 new papers match your alert." in text
    assert text.index("Study 1") < text.index("Study 2") < text.index("Study 3")
    assert "Without Lee" not in text and "more match" not in text
    assert messages(caplog, "alert on ") == [
        "alert on 2611.20001 (+2 more) to ada@example.org: sent"
    ]
    ids = ["2611.20001", "2611.20002", "2611.20003"]
    assert [(status, ref, papers) for status, ref, papers, _ in alert_rows(store)] == [
        ("sent", "2611.20001", ids)
    ]
    (sid,) = store.active_subscribers()
    assert store.sent_paper_ids([sid]) == {sid: set(ids)}
    clock.set(2026, 11, 25, 6, 0)
    store.save_papers([moe_paper(4)], NOV_25, clock())
    await worker.sweep_job()
    await worker.sweep_job()
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()  # the digest
    _, second, digest = smtp_server.handler.to("ada@example.org")
    assert str(second["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 4"
    assert "A new paper matches your alert." in plain(second)
    assert "Study 1" not in plain(second) and "Study 4" in plain(second)
    assert str(digest["Subject"]) == "1 paper for Wed 25 Nov: Mixture of Experts Without Lee"
    assert "Study" not in plain(digest)


async def test_a_digest_leaves_out_the_papers_of_an_alert_another_worker_is_sending(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:  # fmt: skip
    """Another worker sharing the database claimed an alert of papers 1 and 2 for ada and is
    sending it: this worker's sweep, making her digest meanwhile, leaves them out (the alert
    carries them), and sends no alert of its own for them."""
    profiles_path.write_text(only_ada() + LEE)
    worker = make_worker()
    store = worker.deps.store
    other = Paper("2611.29999", "Mixture of Experts Without Lee", "On mixture of experts.")
    store.save_papers([moe_paper(1), moe_paper(2), other], NOV_25, clock())
    sid = store.subscriber_id("ada@example.org")
    assert sid is not None
    held = ("2611.20001", "2611.20002")
    alert = ClaimRequest(sid, NOV_25, held, "<other@paperbot.example.org>", "alert", held[0])
    clock.set(2026, 11, 25, 8, 1)
    assert store.ledger.claim_many([alert], clock()) != [None]  # by a process still running
    await worker.sweep_job()
    (digest,) = smtp_server.handler.to("ada@example.org")
    assert str(digest["Subject"]) == "1 paper for Wed 25 Nov: Mixture of Experts Without Lee"
    assert "Study" not in plain(digest)
    assert [(status, papers) for status, _, papers, _ in alert_rows(store)] == [
        ("sending", list(held))
    ]


async def test_an_alert_shows_max_papers_in_full_and_lists_the_rest_by_title(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Five papers fire for a subscriber who reads 2 at most: the others are listed by title,
    and all five count as sent."""
    profiles_path.write_text(only_ada(max_papers="2") + LEE)
    worker = make_worker()
    store = worker.deps.store
    store.save_papers([moe_paper(n) for n in range(1, 6)], NOV_25, clock())
    await worker.sweep_job()
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Lee”: 5 new papers"
    text = plain(alert)
    assert "5 new papers match your alert." in text
    full, listed = text.split("3 more matches:")
    assert "Study 1" in full and "Study 2" in full and "Study 3" not in full
    titles = [line.strip() for line in listed.splitlines() if line.startswith("  - ")]
    assert titles == [f"- Sparse Mixture of Experts Study {n}" for n in (3, 4, 5)]
    html = alert.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "5 new papers match" in html and "3 more matches" in html
    (sid,) = store.active_subscribers()
    assert store.sent_paper_ids([sid])[sid] == {f"2611.2000{n}" for n in range(1, 6)}
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()
    assert len(smtp_server.handler.to("ada@example.org")) == 1, "no digest: all were sent"


async def test_papers_beyond_what_an_alert_lists_go_in_the_next_one(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """An alert holds what it shows (2 in full, here 2 by title): none is counted sent unseen."""
    monkeypatch.setattr(sweep_module, "MORE_LISTED", 2)
    profiles_path.write_text(only_ada(max_papers="2") + LEE)
    worker = make_worker()
    worker.deps.store.save_papers([moe_paper(n) for n in range(1, 6)], NOV_25, clock())
    await worker.sweep_job()
    await worker.sweep_job()
    first, second = smtp_server.handler.to("ada@example.org")
    assert str(first["Subject"]) == "Alert for “Lee”: 4 new papers"
    assert "Study 4" in plain(first) and "Study 5" not in plain(first)
    assert str(second["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 5"


async def test_a_grouped_alert_failing_for_now_is_retried_with_its_papers_and_message_id(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """The server answers 451 to the alert of papers 1 and 2; paper 3 arrives before the retry
    and goes in an alert of its own; the retry carries 1 and 2, with the same Message-ID."""
    profiles_path.write_text(only_ada() + LEE)
    smtp_server.handler.data_replies["ada@example.org"] = ["451 4.3.0 try later", "250 OK"]
    worker = make_worker()
    store = worker.deps.store
    store.save_papers([moe_paper(1), moe_paper(2)], NOV_25, clock())
    await worker.sweep_job()
    assert smtp_server.handler.to("ada@example.org") == []
    ((status, ref, papers, message_id),) = alert_rows(store)
    assert (status, ref, papers) == ("temp_failed", "2611.20001", ["2611.20001", "2611.20002"])
    clock.set(2026, 11, 25, 5, 1)
    store.save_papers([moe_paper(3)], NOV_25, clock())
    await worker.sweep_job()  # the retry is not due yet
    (new,) = smtp_server.handler.to("ada@example.org")
    assert str(new["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 3"
    clock.set(2026, 11, 25, 5, 30)
    await worker.sweep_job()
    await worker.sweep_job()
    _, retried = smtp_server.handler.to("ada@example.org")
    assert str(retried["Message-ID"]) == message_id
    assert str(retried["Subject"]) == "Alert for “Lee”: 2 new papers"
    assert "Study 1" in plain(retried) and "Study 2" in plain(retried)
    assert "Study 3" not in plain(retried)
    assert [(status, papers) for status, _, papers, _ in alert_rows(store)] == [
        ("sent", ["2611.20001", "2611.20002"]), ("sent", ["2611.20003"]),
    ]  # fmt: skip


async def test_a_grouped_alert_left_sending_is_sent_again_as_it_was_after_its_lease(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer
) -> None:
    """The connection drops after the data of the alert of papers 1 and 2 (it may have
    arrived): once its lease runs out it goes again with the same Message-ID and papers, and
    paper 3, stored meanwhile, goes in an alert of its own."""
    profiles_path.write_text(only_ada() + LEE)
    faults.handler.data["ada@example.org"] = ["drop", "250 OK"]
    worker = start_worker(
        config, clock, lambda: SmtpMailer(faults.host, faults.port, security="none")
    )
    store = worker.deps.store
    store.save_papers([moe_paper(1), moe_paper(2)], NOV_25, clock())
    await worker.sweep_job()
    (dropped,) = faults.handler.dropped
    ((status, _, papers, message_id),) = alert_rows(store)
    assert (status, papers, message_id) == (
        "sending", ["2611.20001", "2611.20002"], str(dropped["Message-ID"]),
    )  # fmt: skip
    clock.set(2026, 11, 25, 5, 2)
    store.save_papers([moe_paper(3)], NOV_25, clock())
    await worker.sweep_job()  # within the lease: only paper 3
    (new,) = faults.handler.to("ada@example.org")
    assert str(new["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 3"
    clock.set(2026, 11, 25, 5, 6)
    await worker.sweep_job()
    _, again = faults.handler.to("ada@example.org")
    assert str(again["Message-ID"]) == message_id
    assert str(again["Subject"]) == str(dropped["Subject"])
    assert "Study 2" in plain(again) and "Study 3" not in plain(again)
    assert [(status, papers) for status, _, papers, _ in alert_rows(store)] == [
        ("sent", ["2611.20001", "2611.20002"]), ("sent", ["2611.20003"]),
    ]  # fmt: skip


async def test_a_digest_a_killed_send_left_sending_goes_at_the_next_sweep(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer,
) -> None:  # fmt: skip
    """A manual send claimed ada's digest and was killed: its process is gone, so the worker
    sends it at its next sweep, as it was (same Message-ID and papers), not after the lease."""
    profiles_path.write_text(only_ada())
    worker = make_worker()
    store = worker.deps.store
    clock.set(2026, 11, 25, 8, 1)
    store.save_papers([moe_paper(1), moe_paper(2)], NOV_25, clock())
    sid = store.subscriber_id("ada@example.org")
    assert sid is not None
    request = ClaimRequest(sid, NOV_25, ("2611.20001",), "<killed@paperbot.example.org>")
    assert store.ledger.claim_many([request], clock()) != [None]
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    with store.engine.begin() as db:
        db.execute(update(Delivery).values(claimed_by=this_process() | {"pid": gone.pid}))
    clock.set(2026, 11, 25, 8, 2)  # well within the 5-minute lease
    await worker.sweep_job()
    (digest,) = smtp_server.handler.to("ada@example.org")
    assert str(digest["Message-ID"]) == "<killed@paperbot.example.org>"
    assert "Study 1" in plain(digest) and "Study 2" not in plain(digest)
    row = store.ledger.get(sid, NOV_25)
    assert row is not None and row.status == "sent"


@pytest.mark.parametrize("send_empty", ["true", "false"])
async def test_a_digest_taken_over_from_an_interrupted_run_goes_again_as_it_was(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture, send_empty: str,
) -> None:  # fmt: skip
    """A `send` claimed ada's digest of paper 1 and died; before its lease runs out the paper
    reaches her in an alert. The worker then sends the digest again as it was, with its
    Message-ID and its paper (it may have arrived), whether or not she wants empty digests,
    and the log, the ledger and the email say the same."""
    caplog.set_level(logging.INFO, logger="bot")
    profiles_path.write_text(only_ada(send_empty=send_empty) + LEE)
    worker = make_worker()
    store = worker.deps.store
    clock.set(2026, 11, 25, 8, 1)
    store.save_papers([moe_paper(1)], NOV_25, clock())
    sid = store.subscriber_ids()["ada@example.org"]
    interrupted = "<interrupted@paperbot.example.org>"
    papers = [moe_paper(1).id]
    assert store.ledger.claim(
        sid, NOV_25, clock(), paper_ids=papers, new_message_id=lambda: interrupted
    )
    await worker.sweep_job()  # within the lease: the alert only
    clock.set(2026, 11, 25, 8, 7)
    await worker.sweep_job()
    alert, digest = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 1"
    assert str(digest["Message-ID"]) == interrupted
    assert str(digest["Subject"]) == "1 paper for Wed 25 Nov: Sparse Mixture of Experts Study 1"
    row = store.ledger.get(sid, NOV_25)
    assert row is not None and (row.status, row.paper_ids) == ("sent", papers)
    assert messages(caplog, "digest for 2026-11-25 to ada@example.org: ") == [
        "digest for 2026-11-25 to ada@example.org: sent (1 paper (taken over from an interrupted run))"
    ]


async def test_an_alert_given_up_keeps_its_papers_until_the_last_leaves_the_window(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """A new subscriber's first alert holds yesterday's and today's papers, and is given up;
    the next day today's paper, still in the window, fires no alert again, and a new paper
    fires one of its own."""
    profiles_path.write_text(only_ada() + LEE)
    worker = make_worker()
    store = worker.deps.store
    store.save_papers([moe_paper(1)], date(2026, 11, 24), clock())
    store.save_papers([moe_paper(2)], NOV_25, clock())
    smtp_server.handler.data_replies["ada@example.org"] = ["451 4.3.0 try later", "250 OK"]
    await worker.sweep_job()
    (sid,) = store.active_subscribers()
    (row,) = {row.id: row for row in store.ledger.alert_rows([sid], date.min).values()}.values()
    assert row.paper_ids == ["2611.20001", "2611.20002"]
    claim = store.ledger.claim(
        sid, row.digest_date, clock(), paper_ids=row.paper_ids, kind="alert", ref=row.ref,
        new_message_id=lambda: "<x@example.org>", retry_now=True,
    )  # fmt: skip
    assert claim is not None
    store.ledger.mark_failed(claim, clock(), error="550 5.7.1 refused", code=550)
    clock.set(2026, 11, 26, 5, 0)  # the 24th's list left the window, the 25th's did not
    store.save_papers([moe_paper(3)], date(2026, 11, 26), clock())
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("ada@example.org")
    assert str(alert["Subject"]) == "Alert for “Lee”: Sparse Mixture of Experts Study 3"


async def test_catch_up_after_downtime_sends_one_digest_with_everything_since(
    make_worker: Callable[[], Worker], clock: Clock, smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    store = worker.deps.store
    store.save_papers([moe_paper(1)], date(2026, 11, 25), clock())
    clock.set(2026, 11, 25, 6, 31)
    await worker.sweep_job()
    assert len(smtp_server.handler.to("ada@example.org")) == 1
    # The worker is down for three days while papers keep arriving.
    for day, n in ((26, 2), (27, 3), (28, 4)):
        clock.set(2026, 11, day, 2, 0)
        store.save_papers([moe_paper(n)], date(2026, 11, day), clock())
    clock.set(2026, 11, 29, 5, 0)  # before ada's send time on the 29th
    await worker.sweep_job()
    await worker.sweep_job()
    mails = smtp_server.handler.to("ada@example.org")
    assert len(mails) == 2
    text = mails[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert all(f"Study {n}" in text for n in (2, 3, 4))
    assert "Study 1" not in text
    clock.set(2026, 11, 29, 6, 31)
    await worker.sweep_job()
    assert len(smtp_server.handler.to("ada@example.org")) == 2  # nothing new: skipped


PACIFIC = """\
subscribers:
  - email: la@example.org
    timezone: America/Los_Angeles
    send_at: "07:00"
    send_empty: true
    interests:
      keywords: ["mixture of experts"]
  - email: la2@example.org
    timezone: America/Los_Angeles
    send_at: "07:00"
    interests:
      keywords: ["mixture of experts"]
  - email: akl@example.org
    timezone: Pacific/Auckland
    send_at: "07:00"
    send_empty: true
    interests:
      keywords: ["mixture of experts"]
"""


def dated(server: SmtpServer) -> list[tuple[str, str]]:
    """(recipient, the date its subject names) of each message received, sorted."""
    found = [
        (m["To"].addresses[0].addr_spec, re.search(r"\w{3} \d+ \w{3}", str(m["Subject"])))
        for m in server.messages
    ]
    return sorted((to, day[0]) for to, day in found if day is not None)


async def test_a_digest_sent_by_hand_ahead_of_time_covers_the_sends_before_it(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """At 13:48 UTC on Friday 27 November `paperbot send` sends Los Angeles its Friday digests
    (before 07:00 there) and Auckland its Saturday one; the worker started then makes up no
    Thursday digest in Los Angeles nor Friday one in Auckland, and records nothing for them,
    but sends the next digests when they are due."""
    profiles_path.write_text(PACIFIC)
    worker = make_worker()
    clock.set(2026, 11, 27, 13, 48)
    await worker.fetch_job()
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    async with mailer:
        await send_digests(
            replace(worker.deps, mailer=mailer), list(worker.roster.values()), SendOptions()
        )
    sent_by_hand = [
        ("akl@example.org", "Sat 28 Nov"), ("la2@example.org", "Fri 27 Nov"),
        ("la@example.org", "Fri 27 Nov"),
    ]  # fmt: skip
    assert dated(smtp_server) == sent_by_hand
    await worker.sweep_job()
    assert dated(smtp_server) == sent_by_hand
    ledger = worker.deps.store.ledger
    assert sorted(ledger.counts()) == [
        (date(2026, 11, 27), "sent", 2), (date(2026, 11, 28), "sent", 1),
    ]  # fmt: skip
    clock.set(2026, 11, 28, 15, 1)  # 07:01 on Saturday in Los Angeles
    await worker.sweep_job()
    assert dated(smtp_server) == sorted([*sent_by_hand, ("la@example.org", "Sat 28 Nov")])
    assert sorted(ledger.counts())[1:] == [
        (date(2026, 11, 28), "sent", 2), (date(2026, 11, 28), "skipped", 1),
    ]  # fmt: skip


async def test_a_new_weekly_subscribers_first_digest_holds_the_week(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    weekly = only_ada(frequency="weekly:mon")
    profiles_path.write_text(weekly)
    worker = make_worker()
    for day, n in ((24, 1), (26, 2), (28, 3)):  # Tuesday, Thursday, Saturday
        clock.set(2026, 11, day, 7, 0)
        worker.deps.store.save_papers([moe_paper(n)], date(2026, 11, day), clock())
        await worker.sweep_job()
    clock.set(2026, 11, 30, 8, 1)  # Monday
    await worker.sweep_job()
    (mail,) = smtp_server.handler.to("ada@example.org")
    assert str(mail["Subject"]).startswith("3 papers for the week to Mon 30 Nov")


async def sources_down_after_the_23rd(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, profiles: str
) -> Worker:
    """A worker that sent ada's digest of Monday 23 November, after which every source fails."""
    profiles_path.write_text(profiles)
    worker = make_worker()
    clock.set(2026, 11, 23, 7, 0)
    worker.deps.store.save_papers([moe_paper(1)], date(2026, 11, 23), clock())
    clock.set(2026, 11, 23, 8, 1)
    await worker.sweep_job()
    worker.sources_down = True
    return worker


async def test_a_digest_waiting_for_papers_still_goes_out_after_its_day(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Monday's weekly digest waits while every source fails; they come back on Tuesday."""
    worker = await sources_down_after_the_23rd(
        make_worker, clock, profiles_path, only_ada(frequency="weekly:mon")
    )
    store = worker.deps.store
    for moment in ((2026, 11, 30, 8, 1), (2026, 11, 30, 23, 59), (2026, 12, 1, 0, 1)):
        clock.set(*moment)  # across midnight
        await worker.sweep_job()
    worker.sources_down = False
    clock.set(2026, 12, 1, 6, 0)
    store.save_papers([moe_paper(2)], date(2026, 11, 30), clock())
    await worker.sweep_job()
    assert [s.split(":")[0] for s in subjects(smtp_server, "ada@example.org")] == [
        "1 paper for the week to Mon 23 Nov", "1 paper for the week to Mon 30 Nov",
    ]  # fmt: skip


async def test_after_days_of_waiting_for_papers_one_digest_carries_them(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """As after downtime: not one digest (or "nothing matched" note) per day of the outage."""
    worker = await sources_down_after_the_23rd(
        make_worker, clock, profiles_path, only_ada(send_empty="true")
    )
    store = worker.deps.store
    for day in (24, 25, 26):
        clock.set(2026, 11, day, 8, 1)
        await worker.sweep_job()
    assert len(worker.catchup.waiting) == 1, "only the latest digest of a subscriber waits"
    worker.sources_down = False
    clock.set(2026, 11, 26, 12, 0)
    store.save_papers([moe_paper(2)], date(2026, 11, 25), clock())
    await worker.sweep_job()
    assert [s.split(":")[0] for s in subjects(smtp_server, "ada@example.org")] == [
        "1 paper for Mon 23 Nov", "1 paper for Thu 26 Nov",
    ]  # fmt: skip


async def test_a_waiting_digest_whose_day_the_frequency_no_longer_names_is_dropped(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    profiles_path.write_text(only_ada(send_empty="true"))
    worker = make_worker()
    worker.sources_down = True
    clock.set(2026, 11, 24, 8, 1)  # Tuesday: ada's digest waits
    await worker.sweep_job()
    assert len(worker.catchup.waiting) == 1
    _edit(profiles_path, only_ada(send_empty="true", frequency="weekly:fri"))
    worker.sources_down = False
    clock.set(2026, 11, 25, 12, 0)
    worker.deps.store.save_papers([moe_paper(2)], date(2026, 11, 25), clock())
    await worker.sweep_job()
    assert subjects(smtp_server, "ada@example.org") == [] and worker.catchup.waiting == ()


async def test_while_a_digest_waits_an_edited_frequency_still_makes_up_no_past_digest(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Bob's Tuesday digest waits for the sources; meanwhile ada moves to Tuesdays."""
    bob = '  - email: bob@example.org\n    send_at: "08:00"\n    interests:\n      keywords: ["mixture of experts"]\n'
    profiles_path.write_text(only_ada(frequency="weekly:mon", send_empty="true") + bob)
    worker = make_worker()
    store = worker.deps.store
    clock.set(2026, 11, 30, 7, 0)  # Monday
    store.save_papers([moe_paper(1)], date(2026, 11, 30), clock())
    clock.set(2026, 11, 30, 8, 1)
    await worker.sweep_job()
    worker.sources_down = True
    clock.set(2026, 12, 1, 8, 1)  # Tuesday: bob's digest waits
    await worker.sweep_job()
    assert len(worker.catchup.waiting) == 1
    clock.set(2026, 12, 2, 12, 0)  # Wednesday
    _edit(profiles_path, only_ada(frequency="weekly:tue", send_empty="true") + bob)
    await worker.sweep_job()
    worker.sources_down = False
    clock.set(2026, 12, 2, 12, 30)
    store.save_papers([moe_paper(2)], date(2026, 12, 2), clock())
    await worker.sweep_job()
    assert subjects(smtp_server, "ada@example.org") == [
        "1 paper for the week to Mon 30 Nov: Sparse Mixture of Experts Study 1"
    ]
    bobs = [s.split(":")[0] for s in subjects(smtp_server, "bob@example.org")]
    assert bobs == ["1 paper for Mon 30 Nov", "1 paper for Wed 2 Dec"]
    assert worker.catchup.waiting == ()


async def test_a_frequency_edited_while_running_takes_effect_at_its_next_send(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Monday's weekly digest went out; on Wednesday it becomes weekly on Fridays: no digest
    dated last Friday (no send was missed), the next one on Friday."""
    weekly = only_ada(frequency="weekly:mon", send_empty="true")
    profiles_path.write_text(weekly)
    worker = make_worker()
    clock.set(2026, 11, 30, 8, 1)  # Monday
    await worker.sweep_job()
    clock.set(2026, 12, 2, 12, 0)  # Wednesday
    await worker.sweep_job()
    profiles_path.write_text(weekly.replace("weekly:mon", "weekly:fri"))
    clock.set(2026, 12, 2, 12, 1)
    await worker.sweep_job()
    clock.set(2026, 12, 4, 8, 1)  # Friday
    await worker.sweep_job()
    subjects = [str(m["Subject"]) for m in smtp_server.handler.to("ada@example.org")]
    assert [s.split(": ")[0] for s in subjects] == [
        "Nothing matched your interests in the week to Mon 30 Nov",
        "Nothing matched your interests in the week to Fri 4 Dec",
    ]


async def test_a_frequency_edited_after_todays_send_time_sends_nothing_for_today(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Monday's weekly digest went out; at noon on Wednesday it becomes weekdays: Wednesday's
    08:00 passed while the frequency named Mondays only, so no digest is made up for it; the
    papers since Monday go out on Thursday at 08:00. Moving ``send_at`` earlier than the time
    of the day, before the day's digest, still sends it at once."""
    weekly = only_ada(frequency="weekly:mon")
    profiles_path.write_text(weekly)
    worker = make_worker()
    store = worker.deps.store
    for day, n in ((30, 1), (1, 2), (2, 3), (3, 4)):  # Monday to Thursday
        month = 11 if day == 30 else 12
        clock.set(2026, month, day, 7, 0)
        store.save_papers([moe_paper(n)], date(2026, month, day), clock())
        clock.set(2026, month, day, 8, 1)
        await worker.sweep_job()
        if day == 2:
            clock.set(2026, 12, 2, 12, 0)
            await worker.sweep_job()
            _edit(profiles_path, weekly.replace("weekly:mon", "weekdays"))
            for minute in (1, 30):
                clock.set(2026, 12, 2, 12, minute)
                await worker.sweep_job()
            assert len(smtp_server.handler.to("ada@example.org")) == 1
    assert [s.split(":")[0] for s in subjects(smtp_server, "ada@example.org")] == [
        "1 paper for the week to Mon 30 Nov", "3 papers for Thu 3 Dec",
    ]  # fmt: skip
    clock.set(2026, 12, 4, 7, 0)
    store.save_papers([moe_paper(5)], date(2026, 12, 4), clock())
    await worker.sweep_job()
    _edit(profiles_path, only_ada("06:00", frequency="weekdays"))
    clock.set(2026, 12, 4, 7, 1)
    await worker.sweep_job()
    assert subjects(smtp_server, "ada@example.org")[2].startswith("1 paper for Fri 4 Dec")


async def test_fall_back_send_time_is_sent_once(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    profiles_path.write_text(PROFILES.replace('"06:45"', '"01:30"'))
    worker = make_worker()
    clock.set(2024, 11, 2, 12, 0)
    worker.deps.store.save_papers([moe_paper(9)], date(2024, 11, 2), clock())
    worker.deps.store.save_papers(
        [Paper(id="2411.00001", title="A Score-Based Diffusion Model", abstract="A diffusion model.")],
        date(2024, 11, 3), clock(),
    )  # fmt: skip
    for hour, minute in ((5, 29), (5, 31), (6, 0), (6, 31), (7, 0)):
        clock.set(2024, 11, 3, hour, minute)
        await worker.sweep_job()
    assert len(smtp_server.handler.to("grace@example.org")) == 1


def _edit(path: Path, text: str) -> None:
    """Save ``text`` as an edit made a while before the next sweep (it has settled)."""
    path.write_text(text)
    then = time_ns() - 10 * SECOND_NS
    os.utime(path, ns=(then, then))


SECOND_NS = 1_000_000_000
SAVED = 1_800_000_000  # when the files of the tests below are written, in seconds since 1970


def _save(path: Path, text: str, at: float = SAVED) -> None:
    """Write ``text`` with its modification time ``at`` (the worker's wall clock says ``SAVED``)."""
    path.write_text(text)
    os.utime(path, ns=(int(at * SECOND_NS), int(at * SECOND_NS)))


def settling(worker: Worker) -> Worker:
    """The worker, its profiles file read with a wall clock that stands at ``SAVED``."""
    worker.profiles.wall = lambda: SAVED
    return worker


async def test_a_reload_that_fails_unexpectedly_keeps_the_roster_and_tells_the_admin(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture, clock: Clock,
) -> None:  # fmt: skip
    """Whatever reading an edited file raises, the sweep goes on with the subscribers in use
    (their digests go out) and the admin hears of it, as of a file rejected."""
    worker = make_worker()

    def broken(path: Path) -> Profiles:
        raise RecursionError("maximum recursion depth exceeded")

    worker.profiles.reader = broken
    _edit(profiles_path, PROFILES + "  - email: bob@example.org\n    send_empty: true\n")
    await worker.fetch_job()
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()
    assert smtp_server.handler.to("ada@example.org"), "the sweep went on"
    assert "bob@example.org" not in {s.email for s in worker.roster.values()}
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert str(alert["Subject"]) == "[paperbot] The profiles file was rejected"
    assert "could not be read: RecursionError('maximum recursion depth exceeded')" in plain(alert)
    assert "profiles reload failed" in caplog.text


async def test_hot_reload_adopts_good_edits_and_keeps_the_last_good_on_bad_ones(
    make_worker: Callable[[], Worker],
    profiles_path: Path,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker()
    added = PROFILES + '  - email: bob@example.org\n    interests:\n      keywords: ["robots"]\n'
    _edit(profiles_path, added)
    await worker.sweep_job()
    assert "bob@example.org" in {s.email for s in worker.roster.values()}
    _edit(profiles_path, added.replace("Asia/Kolkata", "Asia/Atlantis"))
    await worker.sweep_job()
    await worker.sweep_job()
    assert len(worker.roster) == 4, "a bad edit never drops anyone"
    admin = smtp_server.handler.to("admin@paperbot.example.org")
    assert len(admin) == 1 and "rejected" in str(admin[0]["Subject"])
    body = admin[0].get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert f"{profiles_path}:16: subscriber alan@example.org: field 'timezone'" in body
    assert any("live-profiles.yaml:16" in r.getMessage() for r in caplog.records)
    _edit(profiles_path, "subscribers: [")
    await worker.sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 1  # at most one an hour
    _edit(profiles_path, PROFILES)
    await worker.sweep_job()
    assert len(worker.roster) == 3


LAUGHS = "".join(
    f"    x{n}: &x{n} [{', '.join([f'*x{n - 1}' if n else 'ha'] * 10)}]\n" for n in range(6)
)
"""Six lines of lists of ten, each of aliases of the line above: a million values read through
them."""


@pytest.mark.parametrize(
    ("entry", "line", "where"),  # the line counted from the last of PROFILES
    [
        ("    interests: " + "[" * 10_000, 2, "113: subscriber bob@example.org: nested too deeply"),
        (LAUGHS, 6, "49: subscriber bob@example.org: aliases expand the file to more than"),
    ],
    ids=["nested", "aliases"],
)
async def test_a_file_too_deep_or_aliased_to_read_is_rejected_at_a_reload_and_at_a_restart(
    make_worker: Callable[[], Worker], config: Settings, clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture, entry: str, line: int, where: str,
) -> None:  # fmt: skip
    """A file nested thousands of lists deep, or whose aliases expand it to a million values, is
    rejected as any invalid file is: a reload keeps the subscribers in use and tells the admin
    where it goes too far, and a restart with it on disk serves the last good profiles."""
    worker = make_worker()
    in_use = dict(worker.roster)
    _edit(profiles_path, PROFILES + "  - email: bob@example.org\n" + entry)
    await worker.sweep_job()
    assert worker.roster == in_use
    line += PROFILES.count("\n")
    where = f"{profiles_path}:{line}:{where}"
    (error,) = messages(caplog, "profiles reload rejected: ", logging.ERROR)
    assert error.startswith(f"profiles reload rejected: {where}"), error
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert where in plain(alert).replace("\r\n", "\n")
    assert start_worker(config, clock, smtp_mailer(smtp_server)).roster == in_use


async def test_an_edited_file_is_read_while_the_event_loop_goes_on(
    make_worker: Callable[[], Worker], profiles_path: Path
) -> None:
    """Reading and validating the edited profiles file (seconds for tens of thousands of
    subscribers) does not hold up the event loop: what else it carries goes on meanwhile."""
    worker = make_worker()
    reading, loop_ran, waited = threading.Event(), threading.Event(), []

    def reader(path: Path) -> Profiles:
        reading.set()
        waited.append(loop_ran.wait(timeout=5))  # never set if this blocks the loop
        return read_profiles(path)

    async def meanwhile() -> None:
        while not reading.is_set():
            await asyncio.sleep(0.01)
        loop_ran.set()

    worker.profiles.reader = reader
    _edit(profiles_path, only_ada())
    other = asyncio.create_task(meanwhile())
    await worker.sweep_job()
    await other
    assert waited == [True]
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]


async def test_a_reload_that_removes_most_subscribers_is_a_warning_and_an_admin_alert(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A file overwritten by mistake stops most subscribers' mail: not an ordinary edit. Those
    back in the restored file are counted as reactivated."""
    caplog.set_level(logging.INFO, logger="bot")
    worker = make_worker()
    for text in (PROFILES.split("  - email: alan@")[0], PROFILES, only_ada(), PROFILES):
        _edit(profiles_path, text)
        await worker.sweep_job()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "deactivated)" in r.message]
    assert said[1:] == [
        ("INFO", "profiles: 2 subscribers (0 added, 0 updated, 0 reactivated, 1 deactivated)"),
        ("INFO", "profiles: 3 subscribers (0 added, 0 updated, 1 reactivated, 0 deactivated)"),
        ("WARNING", "profiles: 1 subscriber (0 added, 1 updated, 0 reactivated, 2 deactivated): "
                    "removed 2 of the 3 subscribers at once: they get no more mail"),
        ("INFO", "profiles: 3 subscribers (0 added, 1 updated, 2 reactivated, 0 deactivated)"),
    ]  # fmt: skip
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert str(alert["Subject"]) == "[paperbot] Most subscribers were removed from the profiles"
    body = alert.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "removed 2 of the 3 subscribers at once: they get no more mail." in body
    assert f"If {profiles_path} was overwritten or cut short by mistake, restore it" in body
    assert len(worker.roster) == 3


async def test_a_file_that_removed_most_subscribers_while_the_worker_was_down_is_alerted(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """At start-up such a file is judged as a reload is: a warning, and the admin alert, which
    goes out with the first sweep (nothing is emailed before)."""
    make_worker()  # the three subscribers are stored
    profiles_path.write_text(only_ada())
    caplog.set_level(logging.INFO, logger="bot")
    worker = make_worker()
    assert ("WARNING", "profiles: 1 subscriber (0 added, 1 updated, 0 reactivated, 2 deactivated): "
            "removed 2 of the 3 subscribers at once: they get no more mail") in [
        (r.levelname, r.getMessage()) for r in caplog.records
    ]  # fmt: skip
    assert smtp_server.messages == []
    await worker.sweep_job()
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert str(alert["Subject"]) == "[paperbot] Most subscribers were removed from the profiles"
    body = alert.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "removed 2 of the 3 subscribers at once: they get no more mail." in body
    assert "held back" not in body, "it was raised before any mail was tried"
    await worker.sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 1


def smtp_mailer(server: SmtpServer) -> Callable[[], Mailer]:
    return lambda: SmtpMailer(server.host, server.port, security="none")


async def test_a_worker_restarted_with_an_invalid_file_serves_the_last_good_profiles(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A restart (a deploy, a reboot) with a bad edit on disk drops no one: the worker serves
    the subscribers exactly as the last good file said (as the store keeps them), logs the
    file's errors, emails the admin with the first sweep, and adopts the fixed file at the
    usual reload."""
    last_good = start_worker(config, clock, smtp_mailer(smtp_server)).roster
    profiles_path.write_text(PROFILES.replace("Asia/Kolkata", "Asia/Atlantis"))
    worker = start_worker(config, clock, smtp_mailer(smtp_server))
    assert worker.roster == last_good
    (error,) = messages(caplog, "profiles rejected at start-up: ", logging.ERROR)
    assert f"{profiles_path}:16: subscriber alan@example.org: field 'timezone'" in error
    assert smtp_server.messages == [], "the alert goes out with the first sweep"
    await worker.fetch_job()
    await worker.sweep_job()
    # ada's alert, and alan's "nothing today" note: 09:00 has passed in Kolkata
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "admin@paperbot.example.org", "alan@example.org",
    ]  # fmt: skip
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert str(alert["Subject"]) == "[paperbot] The profiles file was rejected"
    body = alert.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "was rejected; the previous version stays in use." in body
    assert f"{profiles_path}:16: subscriber alan@example.org: field 'timezone'" in body
    _edit(profiles_path, only_ada())
    await worker.sweep_job()
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]


async def test_a_file_rejected_at_start_up_and_fixed_just_before_the_first_sweep_is_not_alerted(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """The fix is still settling at the first sweep: the alert waits for it to be judged, and
    is dropped once the fixed file is adopted."""
    start_worker(config, clock, smtp_mailer(smtp_server))
    _save(profiles_path, PROFILES.replace("Asia/Kolkata", "Asia/Atlantis"))
    worker = settling(start_worker(config, clock, smtp_mailer(smtp_server)))
    _save(profiles_path, PROFILES, at=SAVED - 1)  # fixed a second before the first sweep
    await worker.fetch_job()
    await worker.sweep_job()
    assert "admin@paperbot.example.org" not in recipients(smtp_server)
    await worker.sweep_job()  # the fix looks the same: adopted
    assert "admin@paperbot.example.org" not in recipients(smtp_server)
    assert worker.admin.pending == {}


async def test_a_missing_file_at_a_restart_keeps_the_stored_profiles_but_not_at_a_first_start(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A file not found (a volume not mounted after a deploy) is judged as an invalid one: with
    no subscriber stored there is no last good version to serve, and the worker does not start."""
    profiles_path.write_text("subscribers: [")
    with pytest.raises(ProfileError, match=r"live-profiles\.yaml:1"):
        start_worker(config, clock, smtp_mailer(smtp_server))
    profiles_path.write_text(PROFILES)
    last_good = start_worker(config, clock, smtp_mailer(smtp_server)).roster
    profiles_path.unlink()
    worker = start_worker(config, clock, smtp_mailer(smtp_server))
    assert worker.roster == last_good
    (error,) = messages(caplog, "profiles rejected at start-up: ", logging.ERROR)
    assert error.endswith(f"{profiles_path}: cannot read: No such file or directory")
    await worker.sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 1
    profiles_path.write_text(only_ada())
    await worker.sweep_job()
    await worker.sweep_job()
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]


async def test_a_worker_restarting_again_and_again_emails_the_admin_once_an_hour(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """The hourly limit of admin alerts holds across restarts (a service manager restarting a
    worker in a loop), and so does its shortening once the trouble was over."""
    start_worker(config, clock, smtp_mailer(smtp_server))  # the subscribers are stored
    profiles_path.write_text("subscribers: [")
    start = clock()
    for minutes in (0, 20, 40, 61):
        clock.now = start + timedelta(minutes=minutes)
        await start_worker(config, clock, smtp_mailer(smtp_server)).sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 2
    worker = start_worker(config, clock, smtp_mailer(smtp_server))
    _edit(profiles_path, PROFILES)
    await worker.sweep_job()  # the file is fixed: the next bad one is emailed sooner
    clock.now = start + timedelta(minutes=72)
    profiles_path.write_text("subscribers: [")
    await start_worker(config, clock, smtp_mailer(smtp_server)).sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 3


BOB = '  - email: bob@example.org\n    send_at: "08:00"\n    interests:\n      keywords: ["sparse experts"]\n'


async def test_a_suppressed_address_left_in_the_profiles_is_named_once_and_never_swept(
    make_worker: Callable[[], Worker], config: Settings, clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The unsubscribe holds with the address still in the file: the worker says so when it
    adopts the profiles (again at a reload), and its sweeps neither match, log nor record
    anything for that address, so they do not bury the real sends in the runs."""
    caplog.set_level(logging.INFO, logger="bot")
    profiles_path.write_text(only_ada() + BOB)
    Store(config.database_url).suppress("bob@example.org", "unsubscribed")
    matched = matched_emails(monkeypatch)
    worker = make_worker()
    await worker.fetch_job()
    for minute in range(1, 6):  # both digests are due from 08:00
        clock.set(2026, 11, 25, 8, minute)
        await worker.sweep_job()
    assert recipients(smtp_server) == ["ada@example.org"]
    assert "bob@example.org" not in matched and "ada@example.org" in matched
    runs = worker.deps.store.recent_runs()
    assert [(r.command, r.summary.get("counts", {}).get("sent")) for r in runs] == [
        ("sweep", 1), ("fetch", None),
    ]  # fmt: skip
    said = "profiles: bob@example.org is suppressed (unsubscribed): listed, but gets no mail"
    assert [r.getMessage() for r in caplog.records if "bob@" in r.getMessage()] == [said]
    assert "profiles: 2 subscribers (2 added, 0 updated, 0 reactivated, 0 deactivated)" in (
        caplog.messages
    )
    _edit(profiles_path, only_ada())
    await worker.sweep_job()
    assert "profiles: 1 subscriber (0 added, 0 updated, 0 reactivated, 1 deactivated)" in (
        caplog.messages
    )
    _edit(profiles_path, only_ada() + BOB)
    await worker.sweep_job()
    assert [r.getMessage() for r in caplog.records if "bob@" in r.getMessage()] == [said, said]


async def test_a_reload_says_again_only_the_warnings_new_in_the_new_version(
    make_worker: Callable[[], Worker], profiles_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Carol's warning is said when the file is first adopted; an edit that moves her lines and
    adds Dan, with a warning of his own, says Dan's and counts Carol's as said before."""
    caplog.set_level(logging.INFO, logger="bot")
    carol = '  - email: carol@example.org\n    send_at: "08:00"\n'
    dan = "  - email: dan@example.org\n"
    profiles_path.write_text(only_ada() + carol)
    worker = make_worker()
    _edit(profiles_path, only_ada() + dan + carol)
    await worker.sweep_job()
    told = [m for m in caplog.messages if "carol@" in m or "dan@" in m or "said before" in m]
    assert [m.split(": subscriber ")[-1].split(":")[0] for m in told[:2]] == [
        "carol@example.org", "dan@example.org",
    ]  # fmt: skip
    assert told[2:] == [
        "profiles: 1 note said before still applies (`paperbot profiles check` lists the warnings)"
    ]


async def test_a_subscriber_without_interests_is_warned_about_once_and_served_once_given_some(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The profiles' warning is logged when they are adopted, not at every sweep; the digest is
    neither matched nor recorded as skipped, so interests added later that day bring it."""
    caplog.set_level(logging.INFO, logger="bot")
    carol = '  - email: carol@example.org\n    send_at: "08:00"\n'
    profiles_path.write_text(only_ada() + carol)
    matched = matched_emails(monkeypatch)
    worker = make_worker()
    await worker.fetch_job()
    for minute in range(1, 6):
        clock.set(2026, 11, 25, 8, minute)
        await worker.sweep_job()
    (warned,) = [r for r in caplog.records if "carol@" in r.getMessage()]
    assert warned.levelno == logging.WARNING
    assert warned.getMessage().startswith(f"profiles: {profiles_path}:6: subscriber carol@")
    assert "field 'interests': no keywords, description," in warned.getMessage()
    assert "carol@example.org" not in matched and recipients(smtp_server) == ["ada@example.org"]
    assert [r.command for r in worker.deps.store.recent_runs()] == ["sweep", "fetch"]
    _edit(
        profiles_path, only_ada() + carol + '    interests:\n      keywords: ["sparse experts"]\n'
    )
    clock.set(2026, 11, 25, 8, 10)
    await worker.sweep_job()
    assert recipients(smtp_server) == ["ada@example.org", "carol@example.org"]
    about_carol = [r.getMessage() for r in caplog.records if "carol@" in r.getMessage()]
    assert len(about_carol) == 2 and about_carol[1].startswith("digest for 2026-11-25 to carol@")


async def test_a_changed_file_is_read_once_it_looks_the_same_at_the_next_sweep(
    make_worker: Callable[[], Worker], profiles_path: Path
) -> None:
    worker = settling(make_worker())
    _save(profiles_path, only_ada())
    await worker.sweep_job()
    assert len(worker.roster) == 3, "just written: it may be half-written"
    await worker.sweep_job()
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]


async def test_a_changed_file_written_a_while_ago_is_read_at_the_first_sweep(
    make_worker: Callable[[], Worker], profiles_path: Path
) -> None:
    worker = settling(make_worker())
    _save(profiles_path, only_ada(), at=SAVED - 2)
    await worker.sweep_job()
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]


async def test_a_file_caught_empty_in_the_middle_of_a_save_raises_no_alert(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An editor truncated the file, and has written it by the next sweep."""
    profiles_path.write_text(only_ada())
    worker = settling(make_worker())
    _save(profiles_path, "")
    await worker.sweep_job()
    _save(profiles_path, only_ada(), at=SAVED + 0.5)
    await worker.sweep_job()
    await worker.sweep_job()
    assert [s.email for s in worker.roster.values()] == ["ada@example.org"]
    assert smtp_server.handler.to("admin@paperbot.example.org") == []
    assert "rejected" not in caplog.text


async def test_a_bad_edit_after_a_good_reload_is_emailed_within_the_hour(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Within the hour, but not at every change of a file that keeps going bad and good."""
    profiles_path.write_text(only_ada())
    worker = settling(make_worker())
    _save(profiles_path, "subscribers: [", at=SAVED - 125)
    await worker.sweep_job()
    for bad, good in ((SAVED - 65, SAVED - 50), (SAVED - 35, SAVED - 20)):
        clock.now += timedelta(minutes=1)
        _save(profiles_path, only_ada(), at=bad)
        await worker.sweep_job()
        assert len(worker.roster) == 1
        clock.now += timedelta(minutes=1)
        _save(profiles_path, f"subscribers: [  # {good}", at=good)
        await worker.sweep_job()
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 1, "flapping"
    _save(profiles_path, only_ada(), at=SAVED - 10)
    await worker.sweep_job()
    clock.now += timedelta(minutes=10)
    duplicate = only_ada() + only_ada().removeprefix("subscribers:\n")
    _save(profiles_path, duplicate, at=SAVED - 5)
    await worker.sweep_job()
    admin = smtp_server.handler.to("admin@paperbot.example.org")
    assert len(admin) == 2, "the file was good in between: the new problem is emailed"
    body = admin[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "The profiles file as saved at 2027-01-15 07:59:55 UTC was rejected" in body
    assert "ada@example.org" in body and "subscribers: [" not in body
    assert "If it has been fixed since, nothing is left to do" in body


async def test_a_kept_profiles_alert_is_dropped_once_the_file_is_fixed(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Mail did not work when the bad edit was seen; by the time it does, the file is fixed."""
    caplog.set_level(logging.INFO, logger="bot.admin")
    worker = make_worker()
    worker.mailer_factory = lambda: SmtpMailer("127.0.0.1", free_port(), security="none")
    _edit(profiles_path, "subscribers: [")
    await worker.reload_if_changed()
    assert set(worker.admin.pending) == {"profiles"}
    _edit(profiles_path, PROFILES)
    await worker.reload_if_changed()
    assert worker.admin.pending == {} and worker.admin.last == {}
    assert "admin alert (profiles) no longer applies" in caplog.text


async def test_admin_alerts_are_rate_limited_per_kind(
    config: Settings, smtp_server: SmtpServer
) -> None:
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = AdminAlerts(config, clock)
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        assert await admin.notify(mailer, "source", "hf failed", "wait")
        assert not await admin.notify(mailer, "source", "hf failed again", "wait")
        assert await admin.notify(mailer, "smtp", "auth failed", "fix the password")
        clock.now += timedelta(minutes=61)
        assert await admin.notify(mailer, "source", "hf still failing", "wait")
    assert len(smtp_server.messages) == 3
    body = smtp_server.messages[1].get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert "What to do:\nfix the password" in body


async def test_two_workers_sharing_a_database_email_one_alert_of_a_kind_an_hour(
    config: Settings, smtp_server: SmtpServer
) -> None:
    store = Store(config.database_url)
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    one, two = AdminAlerts(config, clock, times=store), AdminAlerts(config, clock, times=store)
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        assert await one.notify(mailer, "smtp", "auth failed", "fix the password")
        assert not await two.notify(mailer, "smtp", "auth failed", "fix the password")
        clock.now += timedelta(minutes=61)
        assert await two.notify(mailer, "smtp", "auth still failing", "fix the password")
    assert len(smtp_server.messages) == 2


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, config: Settings) -> Iterator[Store]:
    """The database two workers share: SQLite, and a real PostgreSQL emptied for the test."""
    url = config.database_url
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
    store = Store(url)
    yield store
    store.close()


async def test_two_workers_raising_an_alert_at_the_same_moment_email_it_once(
    config: Settings, smtp_server: SmtpServer, shared_store: Store
) -> None:
    """Both workers judge the same bad profiles file at one sweep: each raises the alert before
    either has emailed it, and the admin gets one email. An email that did not go out does
    not count: the alert goes once mail works."""
    store = shared_store
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    one, two = AdminAlerts(config, clock, times=store), AdminAlerts(config, clock, times=store)
    one.keep("profiles", "profiles.yaml:3: a key without its ':'", "fix the file")
    two.keep("profiles", "profiles.yaml:3: a key without its ':'", "fix the file")
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        assert await one.flush(mailer) is None
        clock.now += timedelta(seconds=1)
        assert await two.flush(mailer) is None
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 1
    assert one.pending == two.pending == {}
    clock.now += timedelta(minutes=61)
    one.keep("smtp", "auth failed", "fix the password")
    down = SmtpMailer("127.0.0.1", free_port(), security="none")
    assert await one.flush(down) is not None
    two.keep("smtp", "auth failed", "fix the password")
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        assert await two.flush(mailer) is None
        assert await one.flush(mailer) is None
    assert len(smtp_server.handler.to("admin@paperbot.example.org")) == 2


async def test_an_admin_alert_whose_email_is_cancelled_goes_after_a_restart(
    config: Settings, faults: FaultServer
) -> None:
    """The worker is stopped while the server has not answered the alert's email yet: the
    email did not go out, so it does not count, and the worker started again emails it."""
    store = Store(config.database_url)
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = "admin@paperbot.example.org"
    faults.handler.data[admin] = ["sleep:30", "250 OK"]
    first = AdminAlerts(config, clock, times=store)
    first.keep("profiles", "profiles.yaml:3: a key without its ':'", "fix the file")
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        sending = asyncio.create_task(first.flush(mailer))
        while not faults.handler.commands["DATA"]:
            await asyncio.sleep(0.01)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
    assert store.admin_alert_times() == {}
    clock.now += timedelta(minutes=5)
    again = AdminAlerts(config, clock, times=store)
    again.recall_kept()
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        assert await again.flush(mailer) is None
    (alert,) = faults.handler.to(admin)
    assert "a key without its ':'" in plain(alert)
    store.close()


async def test_an_admin_alert_another_worker_found_claimed_stays_kept_when_its_email_fails(
    config: Settings, faults: FaultServer
) -> None:
    """Two workers hold the same alert while mail is down. Once it works again the first
    claims the alert and the second, finding it claimed, leaves it to the first; the server
    then refuses the first's email for now. The alert stays kept for a restarted worker."""
    store = Store(config.database_url)
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = "admin@paperbot.example.org"
    one, two = AdminAlerts(config, clock, times=store), AdminAlerts(config, clock, times=store)
    assert not await one.notify(None, "smtp", "auth failed", "fix the password")
    assert not await two.notify(None, "smtp", "auth failed", "fix the password")
    faults.handler.rcpt[admin] = ["sleep:1", "250 OK"]
    faults.handler.data[admin] = ["451 4.3.0 try later"]
    async with (
        SmtpMailer(faults.host, faults.port, security="none") as first,
        SmtpMailer(faults.host, faults.port, security="none") as second,
    ):
        sending = asyncio.create_task(one.flush(first))
        while not faults.handler.commands["RCPT"]:
            await asyncio.sleep(0.01)
        assert await two.flush(second) is None
        assert await sending is not None
    assert (list(one.pending), two.pending) == (["smtp"], {})
    again = AdminAlerts(config, clock, times=store)
    again.recall_kept()
    assert list(again.pending) == ["smtp"]
    store.close()


async def test_a_source_failing_repeatedly_alerts_the_admin(
    make_worker: Callable[[], Worker], config: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    worker.deps = replace(
        worker.deps, fetch=make_fetch(config, f"file:{tmp_path / 'missing.jsonl'}")
    )
    for _ in range(3):
        await worker.fetch_job()
    admin = smtp_server.handler.to("admin@paperbot.example.org")
    assert len(admin) == 1 and "source" in str(admin[0]["Subject"]).lower()


async def test_while_every_source_fails_a_digest_with_nothing_new_waits_for_papers(
    make_worker: Callable[[], Worker], config: Settings, clock: Clock, tmp_path: Path,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """No "nothing matched" note (alan wants them) and no empty digest because of an outage:
    the due digests go out, with the day's papers, after the next fetch that works."""
    caplog.set_level(logging.INFO, logger="bot.worker")
    worker = make_worker()
    working = worker.deps.fetch
    worker.deps = replace(
        worker.deps, fetch=make_fetch(config, f"file:{tmp_path / 'missing.jsonl'}")
    )
    await worker.fetch_job()
    clock.set(2026, 11, 25, 6, 31)  # alan's 09:00 and ada's 07:30 have passed
    await worker.sweep_job()
    await worker.sweep_job()
    assert smtp_server.messages == []
    assert worker.deps.store.ledger.digests_on([date(2026, 11, 25)]) == {}
    runs = worker.deps.store.recent_runs()  # the second sweep changed nothing: not a run
    assert [(r.command, r.summary.get("counts", {}).get("waiting")) for r in runs] == [
        ("sweep", 2), ("fetch", None),
    ]  # fmt: skip
    assert [r.message for r in caplog.records].count(
        "2 due digests wait for papers: every source failed its last fetch"
    ) == 1
    worker.deps = replace(worker.deps, fetch=working)
    await worker.fetch_job()
    await worker.sweep_job()
    # ada: the alert for her watched author, then the digest with the papers fetched now
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "ada@example.org", "alan@example.org",
    ]  # fmt: skip
    assert " papers for Wed 25 Nov: " in subjects(smtp_server, "ada@example.org")[1]
    assert "no digest waits for papers any more" in caplog.text


def retry_due(worker: Worker, email: str, day: date) -> int:
    """Record the digest of ``email`` for ``day`` failed for now, its retry due; their id."""
    sid = worker.deps.store.subscriber_id(email)
    assert sid is not None
    now = worker.deps.clock()
    earlier = ClaimRequest(sid, day, (), "<earlier@paperbot.example.org>")
    [claim] = worker.deps.store.ledger.claim_many([earlier], now, lease=timedelta(minutes=5))
    assert claim is not None
    worker.deps.store.ledger.mark_failed(claim, now, error="451 later", code=451, retry_at=now)
    return sid


async def test_a_retry_and_a_new_digest_of_one_subscriber_waiting_for_papers_are_one_run(
    make_worker: Callable[[], Worker], config: Settings, clock: Clock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Alan's failed digest of the 24th is due again when his digest of the 25th is: both wait
    for papers as one (the later carries every paper), as the log and the run's counts (what
    ``paperbot status`` shows) say; so the sweeps after the first, which change nothing, are not
    kept in the runs table (they would push the real runs out of ``paperbot status``)."""
    caplog.set_level(logging.INFO)
    worker = make_worker()
    worker.deps = replace(
        worker.deps, fetch=make_fetch(config, f"file:{tmp_path / 'missing.jsonl'}")
    )
    await worker.fetch_job()
    alan = retry_due(worker, "alan@example.org", date(2026, 11, 24))
    clock.set(2026, 11, 25, 6, 31)  # alan's 09:00 and ada's 07:30 have passed
    report = await worker.sweep_job()
    ada = worker.deps.store.subscriber_id("ada@example.org")
    waiting = ((ada, date(2026, 11, 25)), (alan, date(2026, 11, 25)))
    assert sorted(report.waiting) == sorted(worker.catchup.waiting) == sorted(waiting)
    assert "2 due digests wait for papers: every source failed its last fetch" in caplog.messages
    assert worker.deps.store.recent_runs()[0].summary["counts"]["waiting"] == 2
    for minute in (32, 33):
        clock.set(2026, 11, 25, 6, minute)
        await worker.sweep_job()
    runs = worker.deps.store.recent_runs()
    assert [r.command for r in runs] == ["sweep", "fetch"]


async def test_the_worker_logs_each_message_and_records_its_runs(
    make_worker: Callable[[], Worker], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    worker = make_worker()
    await worker.fetch_job()
    await worker.sweep_job()  # ada's alert and alan's note
    clock.set(2026, 11, 25, 5, 1)
    await worker.sweep_job()  # nothing due: not a run
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.worker"]
    assert "digest for 2026-11-25 to alan@example.org: sent (nothing matched)" in lines
    assert any(re.fullmatch(r"alert on \S+ to ada@example\.org: sent", line) for line in lines)
    runs = worker.deps.store.recent_runs()
    assert [(r.command, r.status) for r in runs] == [("sweep", "ok"), ("fetch", "ok")]
    assert runs[0].summary["counts"]["sent"] == 2
    assert {s["day"] for s in runs[1].summary["sources"]} == {"2026-11-24", "2026-11-25"}


async def test_a_fetch_job_records_what_each_source_did_each_day(
    make_worker: Callable[[], Worker], config: Settings
) -> None:
    """The form ``status`` and a restarted worker (``sources_failed_last``) read."""
    worker = make_worker()
    await worker.fetch_job()
    (summary,) = stored_summaries(config.database_url)
    ok = f'"source": "{config.sources}", "status": "ok", "count": 8, "reason": null'
    days = '"days": ["2026-11-24", "2026-11-25"]'
    shown = f'{{{ok}, "day": "2026-11-24"}}, {{{ok}, "day": "2026-11-25"}}'
    assert summary == f'{{{days}, "sources": [{shown}]}}'


async def test_a_sweep_shows_running_while_it_sends_and_one_with_nothing_to_do_is_forgotten(
    config: Settings, clock: Clock, tmp_path: Path
) -> None:
    """So a worker killed in the middle of a sweep leaves a run ``status`` shows interrupted."""
    seen: list[list[tuple[str, str]]] = []

    class Watching(OutboxMailer):
        async def send(self, message: Outgoing) -> None:
            seen.append([(r.command, r.status) for r in worker.deps.store.recent_runs()])
            await super().send(message)

    worker = start_worker(config, clock, lambda: Watching(tmp_path / "outbox"))
    await worker.fetch_job()
    await worker.sweep_job()  # ada's alert and alan's note
    assert seen and all(runs[0] == ("sweep", "running") for runs in seen)
    clock.set(2026, 11, 25, 5, 1)
    await worker.sweep_job()  # nothing due
    runs = [(r.command, r.status) for r in worker.deps.store.recent_runs()]
    assert runs == [("sweep", "ok"), ("fetch", "ok")]


async def test_a_fetch_where_every_source_failed_says_so(
    make_worker: Callable[[], Worker], config: Settings, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    worker = make_worker()
    worker.deps = replace(
        worker.deps, fetch=make_fetch(config, f"file:{tmp_path / 'missing.jsonl'}")
    )
    await worker.fetch_job()
    assert "no papers fetched for 2026-11-25: every source failed" in caplog.text
    assert "fetched 0 papers" not in caplog.text
    assert worker.deps.store.recent_runs()[0].status == "failed"


async def test_a_slow_source_delays_no_sweep_and_its_papers_are_stored_once_it_answers(
    make_worker: Callable[[], Worker], clock: Clock, smtp_server: SmtpServer
) -> None:
    """A source retrying for many minutes (429s with Retry-After, timeouts) holds up no digest,
    alert or retry: sweeps go on while it is asked, and what it gives is stored after."""
    worker = make_worker()
    working = worker.deps.fetch
    await worker.fetch_job()
    answer = asyncio.Event()

    async def slow(day: date) -> FetchReport:
        await answer.wait()
        return await working(day)

    worker.deps = replace(worker.deps, fetch=slow)
    clock.set(2026, 11, 25, 6, 31)  # 07:31 in Berlin: ada's digest is due
    fetching = asyncio.create_task(worker.fetch_job())
    await asyncio.sleep(0)
    await asyncio.wait_for(worker.sweep_job(), 10)
    assert "ada@example.org" in recipients(smtp_server)[1:]  # after her alert
    assert not fetching.done()
    answer.set()
    await asyncio.wait_for(fetching, 10)
    runs = worker.deps.store.recent_runs()
    assert [(r.command, r.status) for r in runs][:2] == [("sweep", "ok"), ("fetch", "ok")]


async def test_a_stop_cancels_a_fetch_in_flight_at_once(
    make_worker: Callable[[], Worker], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's stop does not wait for a source that never answers: the fetch is recorded
    stopped, and the worker stops well within its drain time."""
    caplog.set_level(logging.INFO)
    worker = make_worker()
    await worker.fetch_job()

    async def never(day: date) -> FetchReport:
        await asyncio.Event().wait()
        raise AssertionError("the source never answers")

    worker.deps = replace(worker.deps, fetch=never)
    fetching = asyncio.create_task(worker.fetch_job())
    await asyncio.sleep(0)
    worker.deps.stop.set()
    await asyncio.wait_for(fetching, 2)
    assert "stopping: cancelling the fetch for 2026-11-24" in caplog.messages
    assert worker.deps.store.recent_runs()[0].status == "stopped"


async def test_the_worker_says_what_it_does_before_its_start_up_fetch(
    config: Settings, clock: Clock, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With every source down a fetch takes a while: what the worker does (its sweep, sources,
    where mail goes, and that it fetches first) is logged before the fetch starts, with the
    settings that are most likely wrong (port 465 without TLS)."""
    caplog.set_level(logging.INFO)
    config = config.model_copy(update={"smtp_port": 465})
    stop = asyncio.Event()
    said_before: list[str] = []

    async def fetch(day: date) -> FetchReport:
        said_before.extend(r.getMessage() for r in caplog.records if r.name.startswith("bot."))
        stop.set()
        await asyncio.Event().wait()  # a source that does not answer: the stop cancels it
        raise AssertionError("the source never answers")

    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(), fetch=fetch,
        clock=clock,
    )  # fmt: skip
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    worker = Worker(deps, lambda: mailer, ProfilesFile(config.profiles, read_profiles))
    await run_until(worker, stop, 60, "hf", f"delivering by {mailer.description}")
    assert said_before[-3:] == [
        f"worker started: sweep every 60 s, sources hf; delivering by {mailer.description}",
        "PAPERBOT_SMTP_PORT is 465, where servers expect TLS from the first byte, but "
        "PAPERBOT_SMTP_SECURITY is none: set PAPERBOT_SMTP_SECURITY=tls, unless this server "
        "speaks plain SMTP on port 465",
        "no papers stored for 2026-11-25 yet: fetching the lists; due digests wait for them "
        "(alerts and retries do not)",
    ]
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert "stopping: cancelling the fetch for 2026-11-24" in said
    assert said[-1] == "worker stopped"
    assert ("fetch", "stopped") in [(r.command, r.status) for r in deps.store.recent_runs()]


async def test_a_restart_while_every_source_fails_keeps_digests_waiting_and_fetches_at_once(
    config: Settings, clock: Clock, tmp_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Today's papers are stored, but every source failed the last fetch: a restarted worker
    keeps the digests with nothing new waiting for papers as it would have without the
    restart, and fetches at once; its sweeps do not wait for a source that takes long to
    fail."""
    caplog.set_level(logging.INFO)
    worker = start_worker(config, clock, smtp_mailer(smtp_server))
    await fetch_and_store(worker.deps, date(2026, 11, 25))
    worker.deps = replace(
        worker.deps, fetch=make_fetch(config, f"file:{tmp_path / 'missing.jsonl'}")
    )
    await worker.fetch_job()
    stop, fetched = asyncio.Event(), []

    async def hanging(day: date) -> FetchReport:
        fetched.append(day)
        await asyncio.Event().wait()  # answers only after the stop: the stop cancels it
        raise AssertionError("the source never answers")

    deps = Deps(
        settings=config, store=worker.deps.store, renderer=Renderer(), fetch=hanging, clock=clock
    )  # fmt: skip
    restarted = Worker(deps, smtp_mailer(smtp_server), ProfilesFile(config.profiles, read_profiles))
    asyncio.get_running_loop().call_later(1, stop.set)
    await run_until(restarted, stop, 60, "hf", "delivering by SMTP")
    assert fetched == [date(2026, 11, 24)]  # asked at once, and still asked at the stop
    assert (
        restarted.catchup.after is not None
    )  # meanwhile the first sweep went: alan's digest is out
    assert "alan@example.org" in recipients(smtp_server)
    assert restarted.sources_down  # as before the restart: digests with nothing new wait
    assert (
        "every source failed the last fetch: fetching the lists again; due digests with nothing "
        "new wait for papers"
    ) in caplog.messages


async def test_a_restart_after_todays_list_was_fetched_sweeps_without_fetching_again(
    config: Settings, clock: Clock, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A file source (as arXiv between announcements) lists the same papers yesterday and
    today: they are stored under yesterday, the first list that carried them. Today's list was
    fetched all the same, so a restart sweeps at once rather than fetching it again."""
    caplog.set_level(logging.INFO)
    worker = start_worker(config, clock, smtp_mailer(smtp_server))
    await worker.fetch_job()
    stored = worker.deps.store.papers_between(date(2026, 11, 24), date(2026, 11, 25))
    assert stored and {s.list_date for s in stored} == {date(2026, 11, 24)}
    stop, fetched = asyncio.Event(), []

    async def fetch(day: date) -> FetchReport:
        fetched.append(day)
        return await worker.deps.fetch(day)

    deps = Deps(
        settings=config, store=worker.deps.store, renderer=Renderer(), fetch=fetch, clock=clock
    )  # fmt: skip
    restarted = Worker(deps, smtp_mailer(smtp_server), ProfilesFile(config.profiles, read_profiles))
    asyncio.get_running_loop().call_later(0.5, stop.set)
    await run_until(restarted, stop, 60, str(config.sources), "delivering by SMTP")
    assert fetched == []
    assert not any("before the first sweep" in message for message in caplog.messages)
    assert [r.command for r in deps.store.recent_runs(2)] == ["sweep", "fetch"]


async def until(done: Callable[[], bool], seconds: float = 10) -> None:
    """Wait for ``done`` to hold, looking every few milliseconds."""
    async with asyncio.timeout(seconds):
        while not done():
            await asyncio.sleep(0.02)


def slow_to_fetch(
    config: Settings, clock: Clock, smtp_server: SmtpServer, answer: asyncio.Event
) -> Worker:
    """A worker whose sources answer once ``answer`` is set."""
    real = make_fetch(config, config.sources)

    async def slow(day: date) -> FetchReport:
        await answer.wait()
        return await real(day)

    deps = Deps(
        settings=config, store=Store(config.database_url), renderer=Renderer(), fetch=slow,
        clock=clock,
    )  # fmt: skip
    return Worker(deps, smtp_mailer(smtp_server), ProfilesFile(config.profiles, read_profiles))


async def test_sweeps_go_on_during_a_slow_start_up_fetch_and_due_digests_wait_for_it(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With no list stored for today, the worker fetches at start-up, and once the fetch has
    had its head start its sweeps (alerts, retries) no longer wait for a slow source: a due
    digest does, unrecorded (it would otherwise be skipped with nothing to send), and goes out
    with the papers as soon as the fetch ends."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(scheduler, "HEAD_START", timedelta(seconds=0.2))
    profiles_path.write_text(only_ada(send_at="04:00"))  # due at 05:00 UTC
    answer = asyncio.Event()
    worker = slow_to_fetch(config, clock, smtp_server, answer)
    deps = worker.deps
    stop = asyncio.Event()
    running = asyncio.create_task(run_until(worker, stop, 60, "file", "delivering by SMTP"))
    waits = "1 due digest waits for the lists being fetched at start-up"
    await until(lambda: waits in caplog.messages)
    assert worker.listing and worker.catchup.waiting and not deps.store.ledger.latest_digests()
    assert subjects(smtp_server, "ada@example.org") == []
    answer.set()
    await until(lambda: bool(subjects(smtp_server, "ada@example.org")))
    stop.set()
    await running
    [digest] = smtp_server.handler.to("ada@example.org")
    assert "mixture" in digest.as_string().lower() and not worker.listing
    assert "no digest waits for papers any more" in caplog.messages
    commands = [r.command for r in reversed(deps.store.recent_runs())]
    assert commands[:3] == ["fetch", "sweep", "sweep"], "a sweep while fetching, one after it"
    assert [(r.command, r.status) for r in deps.store.recent_runs(10, command="fetch")] == [
        ("fetch", "ok")
    ]


async def test_digests_that_waited_go_out_when_the_start_up_fetch_ends_during_a_sweep(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The start-up fetch ends while a sweep (begun during it) is still going: the digests
    that waited go out right after that sweep, not a whole sweep interval later."""
    monkeypatch.setattr(scheduler, "HEAD_START", timedelta(seconds=0.1))
    profiles_path.write_text(only_ada(send_at="04:00"))  # due at 05:00 UTC
    answer, swept, going_on = asyncio.Event(), asyncio.Event(), asyncio.Event()
    worker = slow_to_fetch(config, clock, smtp_server, answer)
    sweep_job = worker.sweep_job

    async def long_first_sweep() -> object:
        report = await sweep_job()
        if not swept.is_set():  # the first sweep goes on after its digests waited
            swept.set()
            await going_on.wait()
        return report

    monkeypatch.setattr(worker, "sweep_job", long_first_sweep)
    stop = asyncio.Event()
    running = asyncio.create_task(run_until(worker, stop, 3600, "file", "delivering by SMTP"))
    await until(swept.is_set)
    assert worker.catchup.waiting and subjects(smtp_server, "ada@example.org") == []
    answer.set()
    await until(lambda: not worker.listing)
    await asyncio.sleep(0.1)
    going_on.set()
    await until(lambda: bool(subjects(smtp_server, "ada@example.org")), seconds=5)
    stop.set()
    await running


async def test_while_the_start_up_fetch_runs_retries_go_out_and_due_digests_wait(
    make_worker: Callable[[], Worker], smtp_server: SmtpServer
) -> None:
    """A sweep during the start-up fetch sends the retries that are due; the digests due now
    wait, unrecorded, and go out at the first sweep after it."""
    worker = make_worker()
    await worker.fetch_job()
    alan = retry_due(worker, "alan@example.org", date(2026, 11, 24))
    worker.listing = True
    report = await worker.sweep_job()
    assert [(o.kind, o.email, o.digest_date, o.status) for o in report.outcomes] == [
        ("alert", "ada@example.org", date(2026, 11, 24), "sent"),
        ("digest", "alan@example.org", date(2026, 11, 24), "sent"),
    ]
    assert worker.catchup.waiting == ((alan, date(2026, 11, 25)),)
    assert date(2026, 11, 25) not in {r.digest_date for r, _ in worker.deps.store.upcoming()[0]}
    worker.listing = False
    report = await worker.sweep_job()
    assert [(o.kind, o.email, o.digest_date, o.status) for o in report.outcomes] == [
        ("digest", "alan@example.org", date(2026, 11, 25), "sent"),
    ]
    assert worker.catchup.waiting == () and len(subjects(smtp_server, "alan@example.org")) == 2


async def test_a_source_that_works_but_has_nothing_new_sends_digests_as_usual(
    make_worker: Callable[[], Worker], clock: Clock, smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    await worker.fetch_job()
    await worker.sweep_job()  # alan's note for the 25th
    clock.set(2026, 11, 26, 5, 0)  # the next day: the source still lists the same papers
    await worker.fetch_job()
    assert not worker.sources_down
    await worker.sweep_job()
    notes = subjects(smtp_server, "alan@example.org")
    assert [s.startswith("Nothing matched") for s in notes] == [True, True]


async def test_papers_stored_before_a_catch_up_digest_are_never_lost(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path, smtp_server: SmtpServer
) -> None:
    """Down through 24 Nov; back at 07:00 on the 25th with both days' lists: nothing falls between."""
    utc = only_ada()
    profiles_path.write_text(utc)
    worker = make_worker()
    store = worker.deps.store
    clock.set(2026, 11, 23, 8, 0)
    store.save_papers([moe_paper(1)], date(2026, 11, 23), clock())
    await worker.sweep_job()
    clock.set(2026, 11, 25, 7, 0)
    store.save_papers([moe_paper(2)], date(2026, 11, 24), clock())
    store.save_papers([moe_paper(3)], date(2026, 11, 25), clock())
    clock.set(2026, 11, 25, 7, 1)
    await worker.sweep_job()  # the catch-up digest for the 24th
    clock.set(2026, 11, 25, 8, 1)
    await worker.sweep_job()  # the 25th: nothing new
    texts = [m.get_body(("plain",)).get_content() for m in smtp_server.messages]  # type: ignore[union-attr]
    for n in (1, 2, 3):
        assert sum(f"Study {n}" in text for text in texts) == 1, n


async def test_only_yesterdays_list_is_judged_empty(
    make_worker: Callable[[], Worker], smtp_server: SmtpServer
) -> None:
    worker = make_worker()
    today = worker.deps.clock().date()
    yesterday = today - timedelta(days=1)  # a Tuesday: Hugging Face normally publishes
    empty = SourceOutcome("hf", "empty")
    await worker._check_sources(yesterday, {"hf": [(today, empty)]})  # yesterday's fetch failed
    assert smtp_server.handler.to("admin@paperbot.example.org") == []
    await worker._check_sources(yesterday, {"hf": [(yesterday, empty), (today, empty)]})
    (alert,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert f"no papers for {yesterday}" in alert.get_content()  # type: ignore[attr-defined]


class HangUp:
    """An SMTP server that is down: it takes each TCP connection and hangs up at once, counting
    the connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def hang_up() -> AsyncIterator[HangUp]:
    down = HangUp()
    server = await asyncio.start_server(down.answer, "127.0.0.1", 0)
    down.port = server.sockets[0].getsockname()[1]
    async with server:
        yield down


@dataclass
class Route:
    """Where the worker's mailer connects; a test moves it when the server comes back."""

    port: int
    password: str | None = None

    def mailer(self) -> Mailer:
        user = "u" if self.password else None
        return SmtpMailer(
            "127.0.0.1", self.port, security="none", username=user, password=self.password
        )


def messages(caplog: pytest.LogCaptureFixture, start: str, level: int = logging.INFO) -> list[str]:
    """The log messages at ``level`` that start with ``start``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and r.getMessage().startswith(start)
    ]


async def test_while_smtp_is_down_delivery_pauses_and_everything_goes_out_once_it_is_back(
    config: Settings, clock: Clock, hang_up: HangUp, smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="bot")
    route = Route(hang_up.port)
    worker = start_worker(config.model_copy(update={"smtp_max_failures": 2}), clock, route.mailer)
    await worker.fetch_job()
    tried = []
    for minute, second in ((0, 0), (0, 30), (1, 0), (2, 0), (3, 0), (6, 59)):
        clock.set(2026, 11, 25, 5, minute, second)
        await worker.sweep_job()
        tried.append(hang_up.connections)
    # 2 failed connections stop a sweep; none while paused (1 minute, then 2, then 4)
    assert tried == [2, 2, 4, 4, 6, 6]
    (pending,) = status.collect(worker.deps.store, clock())["upcoming"]
    assert (pending["email"], pending["kind"], pending["status"]) == (
        "ada@example.org", "alert", "temp_failed",
    )  # fmt: skip
    assert pending["attempts"] == 0, "the server never had a word about it"
    assert pending["last_error"].startswith("not sent: 2 connection failures in a row, last: ")
    (paused,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert paused.startswith("email delivery paused until 05:01:00 UTC: 2 connection failures")
    assert len(messages(caplog, "email delivery still failing; paused until")) == 2
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert "Check PAPERBOT_SMTP_HOST and PAPERBOT_SMTP_PORT" in alert
    assert "USERNAME" not in alert
    route.port = smtp_server.port  # the server is back
    clock.set(2026, 11, 25, 5, 7)
    await worker.sweep_job()
    clock.set(2026, 11, 25, 5, 8)
    await worker.sweep_job()
    assert hang_up.connections == 6
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "admin@paperbot.example.org", "alan@example.org",
    ]  # fmt: skip
    assert len(messages(caplog, "email delivery works again", logging.WARNING)) == 1
    (admin,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert "stopped" in str(admin["Subject"])
    body = admin.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert "that the SMTP server is up and reachable from here" in body
    assert "Raised at 2026-11-25 05:00 UTC; held back until email could be sent again." in body
    assert status.collect(worker.deps.store, clock())["upcoming"] == []


async def test_a_retried_digest_and_the_next_days_in_one_sweep_share_no_paper(
    config: Settings, clock: Clock, hang_up: HangUp, smtp_server: SmtpServer,
    profiles_path: Path,
) -> None:  # fmt: skip
    """SMTP is down from the 24th's send time until after the 25th's: both digests go out in one
    sweep, each with its own papers."""
    utc = only_ada()
    profiles_path.write_text(utc)
    route = Route(smtp_server.port)
    worker = start_worker(config.model_copy(update={"smtp_max_failures": 1}), clock, route.mailer)
    store = worker.deps.store
    for day, n in ((23, 1), (24, 2), (25, 3)):
        clock.set(2026, 11, day, 7, 0)
        store.save_papers([moe_paper(n)], date(2026, 11, day), clock())
        clock.set(2026, 11, day, 8, 1)
        await worker.sweep_job()
        route.port = hang_up.port  # down after the 23rd's digest
    assert len(smtp_server.messages) == 1 and hang_up.connections > 0
    route.port = smtp_server.port
    clock.set(2026, 11, 25, 9, 0)
    await worker.sweep_job()
    subjects = sorted(str(m["Subject"]) for m in smtp_server.handler.to("ada@example.org"))
    assert [s.split(":")[0] for s in subjects] == [
        "1 paper for Mon 23 Nov", "1 paper for Tue 24 Nov", "1 paper for Wed 25 Nov",
    ]  # fmt: skip
    texts = [m.get_body(("plain",)).get_content() for m in smtp_server.messages]  # type: ignore[union-attr]
    for n in (1, 2, 3):
        assert sum(f"Study {n}" in text for text in texts) == 1, n


async def test_the_pause_doubles_up_to_30_minutes_while_smtp_stays_down(
    config: Settings, clock: Clock, hang_up: HangUp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.pause")
    route = Route(hang_up.port)
    worker = start_worker(config.model_copy(update={"smtp_max_failures": 1}), clock, route.mailer)
    await worker.fetch_job()
    pauses = []
    for _ in range(7):
        await worker.sweep_job()
        said = [r.getMessage() for r in caplog.records if "paused until" in r.getMessage()]
        until = said[-1].split("paused until ")[1][:8]
        resume = datetime.combine(clock().date(), time.fromisoformat(until), UTC)
        pauses.append(int((resume - clock()).total_seconds() // 60))
        clock.now = resume
    assert pauses == [1, 2, 4, 8, 16, 30, 30]
    assert hang_up.connections == 7


async def test_a_restarted_worker_waits_out_a_delivery_pause_still_in_force(
    config: Settings, clock: Clock, profiles_path: Path, hang_up: HangUp,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A digest falling due during the pause (none was held back when it began) waits for its
    end after a restart too, as the alert's retry does in the ledger; the pause goes on
    doubling while the server stays down."""
    caplog.set_level(logging.INFO, logger="bot.pause")
    profiles_path.write_text(PROFILES.split("  - email: alan@")[0])
    config = config.model_copy(update={"smtp_max_failures": 2})
    route = Route(hang_up.port)
    clock.set(2026, 11, 25, 6, 29, 30)  # ada's digest is due at 07:30 in Berlin
    worker = start_worker(config, clock, route.mailer)
    await worker.fetch_job()
    await worker.sweep_job()  # her alert cannot go: paused until 06:30:30
    assert hang_up.connections == 2
    clock.set(2026, 11, 25, 6, 30, 10)
    caplog.clear()
    restarted = start_worker(config, clock, route.mailer)
    await restarted.sweep_job()
    assert hang_up.connections == 2, "nothing is tried before the pause ends"
    assert status.collect(restarted.deps.store, clock())["upcoming_held"] == 1
    (resumed,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert resumed.startswith("email delivery paused until 06:30:30 UTC: 2 connection failures")
    assert resumed.endswith("(a pause recorded before this start)")
    clock.set(2026, 11, 25, 6, 30, 30)
    await restarted.sweep_job()
    assert messages(caplog, "email delivery still failing; paused until 06:32:30 UTC")
    route.port = smtp_server.port  # the server is back
    clock.set(2026, 11, 25, 6, 32, 30)
    await restarted.sweep_job()
    assert subjects(smtp_server, "ada@example.org")[0].startswith("Alert for")
    assert len(subjects(smtp_server, "ada@example.org")) == 2


async def test_a_worker_restarted_with_other_smtp_settings_does_not_wait_out_the_old_pause(
    config: Settings, clock: Clock, profiles_path: Path, hang_up: HangUp,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A restart to apply a fix to the SMTP settings tries delivery at once."""
    caplog.set_level(logging.INFO, logger="bot.pause")
    profiles_path.write_text(PROFILES.split("  - email: alan@")[0])
    config = config.model_copy(update={"smtp_max_failures": 2})
    route = Route(hang_up.port)
    clock.set(2026, 11, 25, 6, 29, 30)
    worker = start_worker(config, clock, route.mailer)
    await worker.fetch_job()
    await worker.sweep_job()  # her alert cannot go: paused until 06:30:30
    clock.set(2026, 11, 25, 6, 30, 10)
    route.port = smtp_server.port  # where the new settings lead
    fixed = config.model_copy(update={"smtp_host": "smtp.example.org"})  # the server fixed
    restarted = start_worker(fixed, clock, route.mailer)
    await restarted.sweep_job()  # her digest, due at 07:30 Berlin time, goes before 06:30:30
    assert subjects(smtp_server, "ada@example.org") == [
        "4 papers for Wed 25 Nov: Mixture of Experts at Scale"
    ]
    assert messages(caplog, "the SMTP settings changed since delivery paused: trying it at once")


SPAM = "554 5.7.1 Message rejected: spam content"


async def sweep_refused(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture, readers: int, where: str = "data", refusal: str = SPAM,
) -> Worker:  # fmt: skip
    """A worker whose first sweep sends ``readers`` digests (to addresses of 3 domains) to a
    server refusing them as spam (or with ``refusal`` to the command ``where``)."""
    caplog.set_level(logging.INFO, logger="bot")
    crowd_profiles(profiles_path, readers, *UNMATCHED, domains=3)
    script = getattr(faults.handler, where)
    script.update({reader(n, 3): [refusal] for n in range(readers)})
    worker = start_worker(config, clock, Route(faults.port).mailer)
    await worker.fetch_job()
    clock.set(2026, 11, 25, 9, 0)  # their digests are due
    await worker.sweep_job()
    return worker


async def test_a_server_refusing_every_message_pauses_delivery_and_alerts_the_admin(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Refused for their content, the same way message after message: delivery stops as after a
    refused login, and the messages wait for it to work again, neither failed nor suppressed,
    sweep after sweep."""
    worker = await sweep_refused(config, clock, profiles_path, faults, caplog, readers=8)
    (paused,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert f"5 messages in a row refused the same way, last: refused: {SPAM}" in paused
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert "refuses the messages themselves" in alert
    clock.set(2026, 11, 25, 9, 1)  # the pause is over; the server still refuses them
    await worker.sweep_job()
    assert len(messages(caplog, "email delivery still failing; paused until")) == 1
    assert faults.handler.commands["DATA"] >= 10
    assert worker.deps.store.suppressed() == {}
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"temp_failed": 8}, "all wait"


async def test_a_server_refusing_every_mailbox_pauses_delivery_and_alerts_the_admin(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Every recipient refused the same way (a relay serving other domains only): delivery
    stops as for refused content, nobody is suppressed, and the alert points at the relay."""
    refusal = "550 5.1.1 no such user"
    worker = await sweep_refused(config, clock, profiles_path, faults, caplog, 8, "rcpt", refusal)
    (paused,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert f"5 messages in a row refused the same way, last: refused: {refusal}" in paused
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert "refuses every recipient's mailbox" in alert and "PAPERBOT_SMTP_HOST" in alert
    assert worker.deps.store.suppressed() == {}
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"temp_failed": 8}, "all wait"


def staggered(path: Path, send_times: list[str]) -> list[str]:
    """A profiles file of readers at 6 domains, one per send time, who want empty digests; their
    addresses."""
    emails = [reader(n, 6) for n in range(len(send_times))]
    lines = ["subscribers:"]
    for email, at in zip(emails, send_times, strict=True):
        lines += [f"  - email: {email}", f'    send_at: "{at}"', "    send_empty: true"]
        lines += UNMATCHED
    path.write_text("\n".join(lines) + "\n")
    return emails


async def test_mailboxes_refused_one_sweep_after_another_are_the_servers_doing(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Send times a minute apart: each sweep sends one digest, and a relay refusing every
    mailbox refuses each alone. Five in a row at three domains or more blame the server: the
    addresses are not left suppressed, delivery pauses, the admin hears of it, and every digest
    goes out once the server accepts mail."""
    caplog.set_level(logging.INFO, logger="bot")
    emails = staggered(profiles_path, [f"09:0{n}" for n in range(6)])
    refusal = "550 5.1.1 no such user"
    faults.handler.rcpt.update({email: [refusal] * 5 + ["250 OK"] for email in emails})
    worker = start_worker(config, clock, Route(faults.port).mailer)
    await worker.fetch_job()
    for minute in range(5):
        clock.set(2026, 11, 25, 9, minute, 30)
        await worker.sweep_job()
    (paused,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert f"5 mailboxes in a row refused the same way: refused: {refusal}" in paused
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert "refuses every recipient's mailbox" in alert and "not suppressed" in alert
    assert worker.deps.store.suppressed() == {}
    faults.handler.rcpt.clear()  # the relay is fixed
    clock.set(2026, 11, 25, 9, 30)
    await worker.sweep_job()
    assert all(len(faults.handler.to(email)) == 1 for email in emails)
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"sent": 6}


async def test_mailboxes_refused_hours_apart_are_dead_addresses(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Five refusals two hours apart, with nothing accepted between them, are met now and then:
    the row of them is not the server's doing, and the addresses stay suppressed."""
    caplog.set_level(logging.INFO, logger="bot")
    emails = staggered(profiles_path, [f"{9 + 2 * n:02d}:00" for n in range(5)])
    faults.handler.rcpt.update({email: ["550 5.1.1 no such user"] for email in emails})
    worker = start_worker(config, clock, Route(faults.port).mailer)
    await worker.fetch_job()
    for n in range(5):
        clock.set(2026, 11, 25, 9 + 2 * n, 0, 30)
        await worker.sweep_job()
    assert messages(caplog, "email delivery paused until", logging.WARNING) == []
    assert set(worker.deps.store.suppressed()) == set(emails)


async def test_a_server_refusing_the_few_messages_of_a_sweep_alerts_the_admin(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Too few digests to stop the run, all refused the same way: they are retried, and the
    admin hears of it although no run stopped."""
    worker = await sweep_refused(config, clock, profiles_path, faults, caplog, readers=2)
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert f"Every message of a sweep was refused: refused: {SPAM}" in alert
    assert "refuses the messages themselves" in alert
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"temp_failed": 2} and worker.deps.store.suppressed() == {}


async def test_a_server_refusing_every_alert_of_a_sweep_alerts_the_admin(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A sweep that sends only alerts (no digest due yet), all refused the same way: the admin
    hears of it as of refused digests."""
    crowd_profiles(profiles_path, 2, *UNMATCHED, LEE.rstrip("\n"), domains=3)
    faults.handler.data.update({reader(n, 3): [SPAM] for n in range(2)})
    worker = start_worker(config, clock, Route(faults.port).mailer)
    worker.deps.store.save_papers([moe_paper(1)], NOV_25, clock())
    await worker.sweep_job()  # 05:00: the alerts; the digests are due at 08:00
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert f"Every message of a sweep was refused: refused: {SPAM}" in alert
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"temp_failed": 2} and worker.deps.store.suppressed() == {}


@pytest.mark.parametrize(
    ("replies", "refused", "other"),
    [
        (["250 OK", SPAM], "digest", ("alert", "sent")),
        ([SPAM, "250 OK"], "alert", ("digest", "sent")),
        (["451 4.3.0 try again later", SPAM], "digest", ("alert", "failed")),
        ([SPAM, "451 4.3.0 try again later"], "alert", ("digest", "failed")),
    ],
    ids=["digests", "alerts", "digests, alerts deferred", "alerts, digests deferred"],
)
async def test_a_server_refusing_every_message_of_one_kind_in_a_sweep_alerts_the_admin(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture, replies: list[str], refused: str, other: tuple[str, str],
) -> None:  # fmt: skip
    """A sweep's alerts accepted and its few digests all refused the same way, or the other way
    round: the admin hears of it, of what was refused only (the others went out, or failed
    otherwise: not every message of the sweep was refused)."""
    crowd_profiles(profiles_path, 2, *UNMATCHED, LEE.rstrip("\n"), domains=3)
    faults.handler.data.update({reader(n, 3): list(replies) for n in range(2)})
    worker = start_worker(config, clock, Route(faults.port).mailer)
    worker.deps.store.save_papers([moe_paper(1)], NOV_25, clock())
    clock.set(2026, 11, 25, 9, 0)  # the alerts, then the digests due
    report = await worker.sweep_job()
    assert {(o.kind, o.status) for o in report.outcomes} == {(refused, "failed"), other}
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert f"Every {refused} of a sweep was refused: refused: {SPAM}" in alert
    assert worker.deps.store.suppressed() == {}


async def test_status_says_messages_left_by_a_paused_delivery_go_out_when_the_pause_ends(
    config: Settings, clock: Clock, profiles_path: Path, hang_up: HangUp,
    smtp_server: SmtpServer,
) -> None:  # fmt: skip
    """The worker tries again when its pause ends, and status says so; a manual send (which
    retries at once) sends them at once."""
    crowd_profiles(profiles_path, 3, *UNMATCHED)
    route = Route(hang_up.port)
    worker = start_worker(config.model_copy(update={"smtp_max_failures": 2}), clock, route.mailer)
    await worker.fetch_job()
    clock.set(2026, 11, 25, 9, 0)  # their digests are due
    await worker.sweep_job()
    pending = status.collect(worker.deps.store, clock())["upcoming"]
    assert {(p["status"], p["attempts"], p["next_attempt"]) for p in pending} == {
        ("temp_failed", 0, "2026-11-25T09:01:00+00:00")
    }, "when the pause ends, not when the run stopped"
    clock.set(2026, 11, 25, 9, 0, 30)
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    async with mailer:
        report = await send_digests(
            replace(worker.deps, mailer=mailer), list(worker.roster.values()), SendOptions()
        )
    assert report.count("sent") == 3 and len(smtp_server.messages) == 3


async def test_status_counts_the_due_digests_a_delivery_pause_holds_back(
    config: Settings, clock: Clock, hang_up: HangUp, smtp_server: SmtpServer
) -> None:
    """The alerts stop the sweep before any digest is claimed, so the ledger holds none of them:
    the worker records how many wait, again when more fall due during the pause, and status
    counts them until the pause ends."""
    route = Route(hang_up.port)
    worker = start_worker(config.model_copy(update={"smtp_max_failures": 2}), clock, route.mailer)
    store = worker.deps.store
    await worker.fetch_job()
    await worker.sweep_job()  # 05:00: ada's alert cannot go; alan's digest is due
    data = status.collect(store, clock())
    assert [(u["email"], u["kind"]) for u in data["upcoming"]] == [("ada@example.org", "alert")]
    assert data["upcoming_held"] == 1
    paused, stopped = data["runs"][:2]
    assert (stopped["command"], stopped["status"]) == ("sweep", "stopped")
    assert (paused["command"], paused["status"], paused["counts"]) == (
        "sweep", "paused", {"held": 1},
    )  # fmt: skip
    assert paused["stopped"].startswith(
        "email delivery paused until 05:01:00 UTC: 2 connection failures in a row"
    )
    clock.set(2026, 11, 25, 5, 0, 30)
    await worker.sweep_job()  # paused, and nothing new is due: nothing more is recorded
    assert len(store.recent_runs()) == len(data["runs"])
    clock.set(2026, 11, 25, 6, 29, 50)
    await worker.sweep_job()  # fails again: paused until 06:30:50
    clock.set(2026, 11, 25, 6, 30, 10)  # ada's 07:30 in Berlin has passed
    await worker.sweep_job()
    data = status.collect(store, clock())
    (paused,) = [run for run in data["runs"] if run["status"] == "paused"]  # one an outage
    assert (paused["counts"], data["upcoming_held"]) == ({"held": 2}, 2)
    caption = status.tables(data)[2].caption
    assert caption is not None
    assert caption.startswith(
        "up to 2 due digests not listed: held back until the email delivery pause ends (one "
        "with nothing to send is skipped then)"
    ), "whether a digest has anything to send is known once it is matched, after the pause"
    runs = io.StringIO()
    Console(file=runs, width=300).print(status.tables(data)[0])
    assert "│ sweep   │ paused  │ 2026-11-25 05:00 │ held up to 2 │" in runs.getvalue()
    assert status.collect(store, clock() + timedelta(minutes=1))["upcoming_held"] == 0
    route.port = smtp_server.port  # the server is back
    clock.set(2026, 11, 25, 6, 31)
    await worker.sweep_job()
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "ada@example.org", "admin@paperbot.example.org", "alan@example.org",
    ]  # fmt: skip
    data = status.collect(store, clock())
    assert (data["upcoming"], data["upcoming_held"]) == ([], 0)


async def test_a_sweep_cancelled_at_shutdown_keeps_the_counts_of_what_it_did(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer
) -> None:
    """A stop that would not wait cancels the sweep while the server holds two messages: its
    run is recorded with the digests sent before and those given back."""
    crowd_profiles(profiles_path, 12, *UNMATCHED)
    faults.handler.data.update({reader(n): ["sleep:30"] for n in range(4, 12)})
    worker = start_worker(
        config, clock, lambda: SmtpMailer("127.0.0.1", faults.port, security="none", connections=2)
    )
    await worker.fetch_job()
    clock.set(2026, 11, 25, 9, 0)  # their digests are due
    sweeping = asyncio.create_task(worker.sweep_job())
    for _ in range(500):
        await asyncio.sleep(0.01)
        if len(faults.handler.dropped) == 2:  # both connections wait for the server
            break
    assert (len(faults.handler.accepted), len(faults.handler.dropped)) == (4, 2)
    sweeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sweeping
    (run,) = worker.deps.store.recent_runs()[:1]
    assert (run.command, run.status, run.summary["stopped"]) == (
        "sweep", "stopped", "cancelled at shutdown",
    )  # fmt: skip
    counts = {name: n for name, n in run.summary["counts"].items() if n}
    assert counts == {"sent": 4, "released": 6}, "the 2 at the server stay sending"
    states = {state: n for _, state, n in worker.deps.store.ledger.counts()}
    assert states == {"sent": 4, "sending": 2, "temp_failed": 6}


@pytest.fixture
def auth_faults() -> Iterator[FaultServer]:
    yield from serve(auth=True)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_refused_login_pauses_delivery_and_the_alert_says_to_check_the_password(
    config: Settings, clock: Clock, auth_faults: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    route = Route(auth_faults.port, password="wrong")
    worker = start_worker(config, clock, route.mailer)
    await worker.fetch_job()
    await worker.sweep_job()
    (paused,) = messages(caplog, "email delivery paused until", logging.WARNING)
    assert "05:01:00 UTC: SMTP authentication failed: 535" in paused
    (alert,) = messages(caplog, "admin alert (smtp)", logging.ERROR)
    assert "Check PAPERBOT_SMTP_USERNAME / PAPERBOT_SMTP_PASSWORD." in alert
    assert "PAPERBOT_SMTP_HOST" not in alert
    route.password = "right"
    clock.set(2026, 11, 25, 5, 0, 30)
    await worker.sweep_job()
    assert auth_faults.handler.accepted == [], "still paused"
    clock.set(2026, 11, 25, 5, 1)
    await worker.sweep_job()
    assert sorted(str(m["To"]) for m in auth_faults.handler.accepted) == [
        "ada@example.org", "admin@paperbot.example.org", "alan@example.org",
    ]  # fmt: skip
    assert "works again" in caplog.text


async def test_an_alert_that_cannot_be_emailed_is_kept_and_only_a_sent_one_uses_the_hour(
    config: Settings, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.admin")
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = AdminAlerts(config, clock)
    async with SmtpMailer("127.0.0.1", free_port(), security="none") as down:
        assert not await admin.notify(down, "smtp", "sending stopped", "check the host")
        clock.now += timedelta(minutes=5)
        assert not await admin.notify(down, "smtp", "sending stopped again", "check the host")
    assert len(messages(caplog, "admin alert (smtp):", logging.ERROR)) == 1
    assert len(messages(caplog, "admin alert (smtp) again:")) == 1
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as up:
        assert await admin.flush(up) is None and admin.pending == {}
        assert await admin.flush(up) is None
        assert not await admin.notify(up, "smtp", "sending stopped once more", "check the host")
    (sent,) = smtp_server.messages
    assert "sending stopped again" in sent.get_content()  # type: ignore[attr-defined]
    assert len(messages(caplog, "admin alert (smtp):", logging.ERROR)) == 1


async def test_an_admin_alert_kept_while_mail_was_down_outlasts_a_restart(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A worker restarted (a deploy, a crash) before mail worked again still emails the alerts
    it could not: most subscribers removed by mistake would otherwise go unnoticed, as the
    restarted worker finds nothing left to remove."""
    caplog.set_level(logging.INFO)
    worker = make_worker()
    worker.mailer_factory = lambda: SmtpMailer("127.0.0.1", free_port(), security="none")
    profiles_path.write_text(only_ada("23:59"))
    os.utime(profiles_path, (0, 0))  # written a while ago: read at the first look
    await worker.sweep_job()
    assert set(worker.admin.pending) == {"removed"}
    assert smtp_server.messages == []
    restarted = make_worker()
    assert "admin alert (removed) not emailed before this start" in caplog.text
    clock.now += timedelta(minutes=2)  # the delivery pause has ended, and the server is back
    await restarted.sweep_job()
    (sent,) = smtp_server.handler.to("admin@paperbot.example.org")
    assert "removed 2 of the 3 subscribers" in sent.get_content()  # type: ignore[attr-defined]
    make_worker()  # emailed: not kept any more
    assert restarted.deps.store.kept_admin_alerts() == {}


async def test_a_kept_rejection_is_not_emailed_after_a_restart_with_the_file_fixed(
    make_worker: Callable[[], Worker], profiles_path: Path, smtp_server: SmtpServer,
    clock: Clock,
) -> None:  # fmt: skip
    good = only_ada("23:59", timezone="Europe/Berlin")
    profiles_path.write_text(good)
    worker = make_worker()
    worker.mailer_factory = lambda: SmtpMailer("127.0.0.1", free_port(), security="none")
    profiles_path.write_text(good.replace("Europe/Berlin", "Europe/Nowhere"))
    os.utime(profiles_path, (0, 0))
    await worker.sweep_job()
    assert set(worker.admin.pending) == {"profiles"}
    profiles_path.write_text(good)
    restarted = make_worker()
    assert restarted.admin.pending == {}
    clock.now += timedelta(minutes=2)
    await restarted.sweep_job()
    assert smtp_server.handler.to("admin@paperbot.example.org") == []
    assert restarted.deps.store.kept_admin_alerts() == {}


async def test_a_kept_alert_another_worker_emailed_since_is_not_emailed_again(
    config: Settings, smtp_server: SmtpServer
) -> None:
    store = Store(config.database_url)
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    one = AdminAlerts(config, clock, times=store)
    assert not await one.notify(None, "smtp", "auth failed", "fix the password")
    two = AdminAlerts(config, clock, times=store)
    two.recall_kept()
    assert set(two.pending) == {"smtp"}
    async with SmtpMailer(smtp_server.host, smtp_server.port, security="none") as mailer:
        clock.now += timedelta(minutes=1)
        assert await one.flush(mailer) is None
        clock.now += timedelta(minutes=1)
        assert await two.flush(mailer) is None
    assert len(smtp_server.messages) == 1 and two.pending == {}


async def test_an_alert_refused_for_good_is_dropped_and_the_others_still_go(
    config: Settings, faults: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    faults.handler.rcpt["admin@paperbot.example.org"] = ["550 5.1.1 no such mailbox"] * 9
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = AdminAlerts(config, clock)
    async with SmtpMailer(faults.host, faults.port, security="none") as mailer:
        assert not await admin.notify(mailer, "source", "hf failed", "wait")
        assert admin.pending == {}
    assert "the admin alert (source) was refused and is dropped: " in caplog.text


async def test_kept_alerts_that_still_cannot_be_emailed_pause_delivery(
    make_worker: Callable[[], Worker], profiles_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SMTP down with nothing due: the kept alert is tried again once, then delivery pauses."""
    caplog.set_level(logging.INFO)
    late = only_ada("23:59", "moe")
    profiles_path.write_text(late)
    worker = make_worker()
    worker.mailer_factory = lambda: SmtpMailer("127.0.0.1", free_port(), security="none")
    await worker._notify("source", "hf failed 3 fetches", "wait")
    assert set(worker.admin.pending) == {"source"}
    for _ in range(5):
        await worker.sweep_job()
    assert len(messages(caplog, "could not email the admin alert", logging.WARNING)) == 1
    assert len(messages(caplog, "email delivery paused until 05:01:00 UTC", logging.WARNING)) == 1
    assert worker.pause.active(worker.deps.clock())


async def test_a_kept_alert_whose_connection_is_lost_does_not_pause_delivery(
    config: Settings, clock: Clock, profiles_path: Path, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The server can be reached, and lost only that message's connection: the alert stays
    kept for the next sweep, and delivery goes on."""
    caplog.set_level(logging.INFO)
    late = only_ada("23:59", "moe")
    profiles_path.write_text(late)
    faults.handler.rcpt["admin@paperbot.example.org"] = ["drop"]
    worker = start_worker(config, clock, Route(faults.port).mailer)
    await worker._notify("source", "hf failed 3 fetches", "wait")
    assert set(worker.admin.pending) == {"source"}
    await worker.sweep_job()
    assert faults.handler.commands["RCPT"] == 2, "emailed again at the sweep"
    assert set(worker.admin.pending) == {"source"}
    assert not worker.pause.active(worker.deps.clock())
    assert messages(caplog, "email delivery paused until", logging.WARNING) == []


async def test_delivery_works_again_once_the_server_answers_about_a_message(
    config: Settings, clock: Clock, hang_up: HangUp, faults: FaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """After a pause, messages whose connection is lost before the server says anything about
    them do not show that delivery works again; one it accepts does."""
    caplog.set_level(logging.INFO, logger="bot")
    route = Route(hang_up.port)
    settings = config.model_copy(update={"smtp_max_failures": 3, "admin_email": None})
    worker = start_worker(settings, clock, route.mailer)
    await worker.fetch_job()
    await worker.sweep_job()  # ada's alert and alan's digest are due; the server is down
    assert worker.pause.active(worker.deps.clock())
    route.port = faults.port
    faults.handler.rcpt.update({"ada@example.org": ["drop"], "alan@example.org": ["drop"]})
    clock.set(2026, 11, 25, 5, 1)
    report = await worker.sweep_job()
    assert [o.status for o in report.outcomes] == ["failed", "failed"] and not report.stopped
    assert messages(caplog, "email delivery works again", logging.WARNING) == []
    faults.handler.rcpt.clear()
    clock.set(2026, 11, 25, 5, 10)  # their retries are due
    report = await worker.sweep_job()
    assert [o.status for o in report.outcomes] == ["sent", "sent"]
    assert len(messages(caplog, "email delivery works again", logging.WARNING)) == 1


async def test_a_new_outage_long_after_the_last_pause_starts_a_short_pause_again(
    make_worker: Callable[[], Worker], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.pause")
    worker = make_worker()
    worker.pause.begin("connection refused", clock())
    clock.now += timedelta(minutes=1)
    worker.pause.begin("connection refused", clock())  # right after: twice as long
    assert worker.pause.length == timedelta(minutes=2)
    clock.now += timedelta(days=1)
    worker.pause.begin("connection refused", clock())
    assert worker.pause.length == timedelta(minutes=1)
    assert len(messages(caplog, "email delivery paused until", logging.WARNING)) == 2


async def test_a_source_that_fails_only_for_yesterday_is_not_down(
    make_worker: Callable[[], Worker],
) -> None:
    worker = make_worker()
    today = worker.deps.clock().date()
    yesterday = today - timedelta(days=1)
    failed, ok = SourceOutcome("hf", "failed", reason="x"), SourceOutcome("hf", "ok", 1)
    await worker._check_sources(yesterday, {"hf": [(yesterday, failed), (today, ok)]})
    assert not worker.sources_down
    await worker._check_sources(yesterday, {"hf": [(yesterday, failed), (today, failed)]})
    assert worker.sources_down


async def test_without_an_admin_address_an_alert_is_logged_once_an_hour(
    config: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.admin")
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    admin = AdminAlerts(config.model_copy(update={"admin_email": None}), clock)
    for _ in range(3):
        assert not await admin.notify(None, "source", "hf failed", "wait")
    assert admin.pending == {}
    assert len(messages(caplog, "admin alert (source):", logging.ERROR)) == 1
    clock.now += timedelta(minutes=61)
    await admin.notify(None, "source", "hf still failing", "wait")
    assert len(messages(caplog, "admin alert (source):", logging.ERROR)) == 2


@pytest.mark.parametrize(
    ("cause", "advice"),
    [(ConnectionDeliveryError("connection refused"), "PAPERBOT_SMTP_HOST and PAPERBOT_SMTP_PORT"),
     (DroppedDeliveryError("connection lost"), "PAPERBOT_SMTP_HOST and PAPERBOT_SMTP_PORT"),
     (UnknownHostDeliveryError("no such host"), "PAPERBOT_SMTP_HOST: that name does not exist"),
     (AuthenticationDeliveryError("535"), "PAPERBOT_SMTP_USERNAME / PAPERBOT_SMTP_PASSWORD"),
     (TlsDeliveryError("wrong version number"), "PAPERBOT_SMTP_SECURITY and PAPERBOT_SMTP_PORT"),
     (PermanentDeliveryError("554 5.7.1 spam"), "refuses the messages themselves"),
     (RecipientDeliveryError("550 5.1.1 no such user"), "refuses every recipient's mailbox")],
)  # fmt: skip
def test_smtp_advice_matches_the_cause(cause: DeliveryError, advice: str) -> None:
    assert advice in smtp_advice(cause)


def worker_in(folder: Path, config: Settings, clock: Clock, smtp_server: SmtpServer) -> Worker:
    """A worker whose database file is in ``folder`` (made here), to be moved away and back."""
    folder.mkdir()
    config = config.model_copy(update={"database_url": f"sqlite:///{folder / 'bot.db'}"})
    return start_worker(
        config, clock, lambda: SmtpMailer(smtp_server.host, smtp_server.port, security="none")
    )


def _database_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("database ")]


async def test_while_the_database_is_down_jobs_log_one_line_and_digests_go_out_once_it_is_back(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The database file cannot be opened any more (its folder is gone): sweeps, a fetch and a
    profiles reload fail quietly, and everything works again once it is back."""
    caplog.set_level(logging.DEBUG, logger="bot")
    folder = tmp_path / "db"
    worker = worker_in(folder, config, clock, smtp_server)
    await worker.fetch_job()
    worker.deps.store.close()  # no connection stays open to the moved file
    folder.rename(tmp_path / "db-moved")
    clock.set(2026, 11, 25, 6, 31)  # ada's 07:30 and alan's 09:00 have passed
    await worker.sweep_job()
    await worker.fetch_job()
    _edit(profiles_path, PROFILES + "  - email: bob@example.org\n    send_empty: true\n")
    for _ in range(3):
        await worker.sweep_job()
        assert not worker.busy.locked()
    assert smtp_server.messages == []
    assert len(worker.roster) == 3, "the edit waits for the database"
    (down,) = [r for r in _database_records(caplog) if r.levelno == logging.ERROR]
    assert down.getMessage() == (
        "database unavailable: unable to open database file; trying again at the next sweep"
    )
    assert [r.levelno for r in _database_records(caplog)] == [logging.ERROR] + [logging.DEBUG] * 4
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    (tmp_path / "db-moved").rename(folder)
    await worker.sweep_job()
    assert "bob@example.org" in {s.email for s in worker.roster.values()}
    assert sorted(recipients(smtp_server)) == [
        "ada@example.org", "ada@example.org", "alan@example.org",
    ]  # fmt: skip
    assert len(messages(caplog, "database available again", logging.WARNING)) == 1
    await worker.fetch_job()
    assert len(_database_records(caplog)) == 6
    assert [r.command for r in worker.deps.store.recent_runs()] == ["fetch", "sweep", "fetch"]


async def test_a_fetch_that_fails_for_another_reason_still_raises_and_frees_the_worker(
    make_worker: Callable[[], Worker], caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker()

    async def broken(day: date) -> None:
        raise RuntimeError("a bug in a source")

    worker.deps = replace(worker.deps, fetch=broken)
    with pytest.raises(RuntimeError, match="a bug in a source"):
        await worker.fetch_job()
    assert not worker.busy.locked()
    assert _database_records(caplog) == []
    assert worker.deps.store.recent_runs()[0].status == "error"


def once_claimed(store: Store) -> threading.Event:
    """Set once the ledger has claimed messages: the senders are at work, and read the
    suppression list before they send each."""
    claimed = threading.Event()
    claim_many = store.ledger.claim_many

    def claiming(*args: Any, **kwargs: Any) -> Any:
        claims = claim_many(*args, **kwargs)
        claimed.set()
        return claims

    store.ledger.claim_many = claiming  # type: ignore[method-assign]
    return claimed


async def test_a_database_lost_in_the_middle_of_delivery_ends_the_sweep_and_nothing_is_lost(
    make_worker: Callable[[], Worker], clock: Clock, profiles_path: Path,
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The connection drops once the senders have started: the sweep ends (it does not wait
    forever on its queue), and the claimed digests no sender handed to the server are released:
    they go out at the next sweep, without waiting for their lease to run out."""
    crowd_profiles(profiles_path, 20, *UNMATCHED)
    worker = make_worker()
    await worker.fetch_job()
    store = worker.deps.store
    working, claimed = store.suppressed_emails, once_claimed(store)

    def dropped() -> set[str]:  # as the senders load the suppression list
        if claimed.is_set():
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return working()

    store.suppressed_emails = dropped  # type: ignore[method-assign]
    clock.set(2026, 11, 25, 9, 0)  # their digests are due
    report = await asyncio.wait_for(worker.sweep_job(), 30)
    assert report.outcomes == [] and not worker.busy.locked()
    (down,) = messages(caplog, "database unavailable: ", logging.ERROR)
    assert down.startswith("database unavailable: server closed the connection; ")
    store.suppressed_emails = working  # type: ignore[method-assign]
    (run,) = status.collect(store, clock())["runs"][:1]
    assert (run["command"], run["status"], run["stopped"]) == (
        "sweep", "error", "database unavailable: server closed the connection",
    )  # fmt: skip
    (pending, *_) = status.collect(store, clock())["upcoming"]
    assert (pending["status"], pending["attempts"]) == ("temp_failed", 0)
    assert pending["last_error"] == (
        "not sent: the run ended with a database error: server closed the connection"
    )
    await worker.sweep_job()
    assert sorted(recipients(smtp_server)) == sorted(f"reader{n}@example.org" for n in range(20))


async def test_digests_claimed_when_the_database_went_away_go_out_as_soon_as_it_is_back(
    config: Settings, clock: Clock, profiles_path: Path, smtp_server: SmtpServer,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The database file goes away once the digests are claimed: they cannot be given back and
    stay ``sending``, held by this worker, which still runs. They are its own and no server had
    them: the first sweep that gets through sends them, without waiting out their lease."""
    caplog.set_level(logging.INFO, logger="bot")
    crowd_profiles(profiles_path, 20, *UNMATCHED)
    folder = tmp_path / "db"
    worker = worker_in(folder, config, clock, smtp_server)
    await worker.fetch_job()
    store = worker.deps.store
    working, claimed = store.suppressed_emails, once_claimed(store)

    def gone() -> set[str]:  # as the senders load the suppression list
        if claimed.is_set():
            store.engine.dispose()  # no connection stays open to the moved file
            folder.rename(tmp_path / "db-moved")
            store.suppressed_emails = working  # type: ignore[method-assign]
        return working()

    store.suppressed_emails = gone  # type: ignore[method-assign]
    clock.set(2026, 11, 25, 9, 0)  # their digests are due
    report = await asyncio.wait_for(worker.sweep_job(), 30)
    assert report.outcomes == [] and smtp_server.messages == []
    (left,) = messages(caplog, "left 'sending': 20 claimed messages", logging.WARNING)
    assert left.endswith(
        "(this process gives them back once the database works again: a worker at its next "
        "sweep, a command before it exits; otherwise they are sent again as after a crash)"
    )
    (tmp_path / "db-moved").rename(folder)
    assert {row["status"] for row in status.collect(store, clock())["upcoming"]} == {"sending"}
    clock.now += timedelta(minutes=1)  # well within their lease
    report = await worker.sweep_job()
    assert sorted(recipients(smtp_server)) == sorted(f"reader{n}@example.org" for n in range(20))
    assert [o.status for o in report.outcomes] == ["sent"] * 20
    assert messages(caplog, "what the database refused before", logging.INFO) == [
        "what the database refused before is recorded now: 20 claimed messages given back (due now)"
    ]
    assert status.collect(store, clock())["upcoming"] == []
